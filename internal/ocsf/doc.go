// Package ocsf maps Kubernetes audit events to OCSF (the Open
// Cybersecurity Schema Framework) API Activity events, class_uid 6003,
// schema version Version.
//
// Append writes one OCSF event as a JSON object for one audit event line,
// copying the event's strings as they are (escapes included) and its
// nested values (bodies, annotations, user.extra) as raw JSON, so that it
// allocates nothing beyond growing the caller's buffer. The mapping:
//
//	activity_id, type_uid    verb: create 1, get/list/watch 2, update/patch 3,
//	                         delete/deletecollection 4, any other 99
//	time                     stageTimestamp (ms since the epoch); start_time
//	                         requestReceivedTimestamp
//	status_id, status_code   responseStatus.code: below 400 Success, else
//	                         Failure, none (stage RequestReceived) Unknown
//	actor.user               user.username, user.uid, user.groups
//	actor.authorizations     the authorization.k8s.io/decision annotation
//	api.operation            verb; api.request.uid auditID; api.version
//	                         objectRef.apiVersion; api.group.name
//	                         objectRef.apiGroup; api.response.code
//	src_endpoint             sourceIPs[0]; intermediate_ips the rest
//	http_request             url.path and url.query_string from requestURI,
//	                         user_agent userAgent
//	resources[0]             objectRef: name, namespace, uid, type
//	                         (resource or resource/subresource)
//	metadata                 version Version; product kube-apiserver by
//	                         Kubernetes; log_version the event's apiVersion;
//	                         original_time stageTimestamp as written
//	unmapped                 every other field of the event, raw: level,
//	                         stage, annotations, responseStatus,
//	                         requestObject, responseObject, impersonatedUser,
//	                         user.extra, objectRef.resourceVersion, any
//	                         field a later Kubernetes adds, and any field
//	                         whose value is not of the type kube-apiserver
//	                         writes
//
// A source IP that is not an IP address (kube-apiserver drops those
// already) goes to unmapped.sourceIPs instead. A line that is not valid
// JSON, or has neither timestamp, is not mapped (ErrNotMappable): the
// caller ships it as it ships lines it cannot parse.
package ocsf
