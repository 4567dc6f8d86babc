package agent

import "github.com/prometheus/client_golang/prometheus"

// metrics are the agent's Prometheus collectors.
type metrics struct {
	sourceUp        prometheus.Gauge
	rotations       prometheus.Counter
	filesDiscovered prometheus.Counter
	openFiles       prometheus.Gauge
	lagBytes        *prometheus.GaugeVec
	lagSeconds      *prometheus.GaugeVec
	fileOffset      *prometheus.GaugeVec
	fileSize        *prometheus.GaugeVec
	lines           *prometheus.CounterVec
	emptyLines      *prometheus.CounterVec
	malformed       *prometheus.CounterVec
	redacted        *prometheus.CounterVec
	unredactable    *prometheus.CounterVec
	dropped         *prometheus.CounterVec
	gaps            *prometheus.CounterVec
	gapBytes        *prometheus.CounterVec
	tamper          *prometheus.CounterVec
	anchors         *prometheus.CounterVec
	holeBytes       *prometheus.CounterVec
	blockReads      *prometheus.CounterVec
	shippedRecords  *prometheus.CounterVec
	shippedBytes    *prometheus.CounterVec
	batches         *prometheus.CounterVec
	retries         *prometheus.CounterVec
	failures        *prometheus.CounterVec
	deadLetter      *prometheus.CounterVec
	lastSuccess     *prometheus.GaugeVec
	commitDuration  prometheus.Histogram
	writeDuration   *prometheus.HistogramVec
	commitErrors    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	sink := []string{"sink"}
	m := &metrics{
		sourceUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditrail_source_up",
			Help: "1 when the audit log directory and live file are readable."}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_rotations_total",
			Help: "Rotations of the live audit log observed."}),
		filesDiscovered: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_files_discovered_total",
			Help: "Audit files discovered."}),
		openFiles: prometheus.NewGauge(prometheus.GaugeOpts{Name: "auditrail_open_files",
			Help: "Descriptors held open on audit files."}),
		lagBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "auditrail_sink_lag_bytes",
			Help: "Bytes on disk not yet acknowledged by the sink."}, sink),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "auditrail_sink_lag_seconds",
			Help: "While the sink has bytes to catch up on: age of the last event it acknowledged; 0 when caught up."}, sink),
		fileOffset: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "auditrail_file_offset_bytes",
			Help: "Per audit file on disk, the offset below which the sink acknowledged everything."}, []string{"sink", "file"}),
		fileSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "auditrail_file_size_bytes",
			Help: "Per audit file on disk, its size when last seen (uncompressed files)."}, []string{"file"}),
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_lines_read_total",
			Help: "Records read for a sink, by kind (event, unparsed, oversized, gap, tamper, heartbeat)."}, []string{"sink", "kind"}),
		emptyLines: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_lines_empty_total",
			Help: "Empty lines skipped."}, sink),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_lines_malformed_total",
			Help: "Lines shipped raw because they are not well-formed events, by reason."}, []string{"sink", "reason"}),
		redacted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_redacted_values_total",
			Help: "Secret and token values replaced by their SHA-256 before shipping."}, sink),
		unredactable: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_redaction_sealed_total",
			Help: "Records that could not be redacted and were shipped with the content replaced by a marker and its SHA-256, by what: body (of an event on a sensitive resource) or unparsed (line)."}, []string{"sink", "what"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_events_dropped_total",
			Help: "Events not shipped to the sink because a drop rule matched, by rule."}, []string{"sink", "rule"}),
		gaps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_gaps_total",
			Help: "Gap records emitted for data a sink could not read, by reason."}, []string{"sink", "reason"}),
		gapBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_gap_bytes_total",
			Help: "Known bytes covered by gap records."}, sink),
		holeBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_hole_bytes_total",
			Help: "NUL bytes skipped where a line should start: the hole a writer without O_APPEND leaves after a truncation."}, sink),
		blockReads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_reader_blocks_total",
			Help: "Blocks of lines the sinks' readers took, by how: read (read, framed and parsed from the file) or shared (taken from another sink's reader)."}, []string{"how"}),
		tamper: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_tamper_signals_total",
			Help: "Changes on the node outside normal operation (audit files deleted or deleted out of order, state lost), by reason."}, []string{"reason"}),
		anchors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_anchors_total",
			Help: "Hash chain heads queued as anchor records for the other sinks, by the sink whose chain it is."}, sink),
		shippedRecords: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_sink_records_total",
			Help: "Records acknowledged by the sink."}, sink),
		shippedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_sink_bytes_total",
			Help: "Record bytes acknowledged by the sink."}, sink),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_sink_batches_total",
			Help: "Batches acknowledged by the sink."}, sink),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_sink_retries_total",
			Help: "Write attempts that failed and were retried."}, sink),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_sink_permanent_failures_total",
			Help: "Batches that failed permanently and went to the dead-letter directory."}, sink),
		deadLetter: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auditrail_sink_dead_letter_records_total",
			Help: "Records written to the dead-letter directory."}, sink),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "auditrail_sink_last_success_timestamp_seconds",
			Help: "Unix time of the sink's last acknowledged batch."}, sink),
		writeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "auditrail_sink_write_duration_seconds",
			Help: "Time of one write attempt of a batch to the sink, successful or not.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, sink),
		commitDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "auditrail_checkpoint_commit_duration_seconds",
			Help: "Time to commit the checkpoint.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_checkpoint_commit_errors_total",
			Help: "Checkpoint commits that failed."}),
	}
	if reg != nil {
		reg.MustRegister(m.sourceUp, m.rotations, m.filesDiscovered, m.openFiles, m.lagBytes, m.lagSeconds, m.fileOffset, m.fileSize, m.lines,
			m.emptyLines, m.malformed, m.redacted, m.unredactable, m.dropped, m.gaps, m.gapBytes, m.tamper, m.anchors, m.holeBytes, m.blockReads, m.shippedRecords, m.shippedBytes, m.batches,
			m.retries, m.failures, m.deadLetter, m.lastSuccess, m.writeDuration, m.commitDuration, m.commitErrors)
	}
	return m
}
