package s3

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/auditrail/auditrail/internal/tlsconfig"
	"github.com/auditrail/auditrail/internal/units"
)

// Config configures the S3 sink.
type Config struct {
	Bucket string `yaml:"bucket"`
	// Region of the bucket. Empty uses the SDK's usual sources
	// (AWS_REGION, shared config).
	Region string `yaml:"region"`
	// Endpoint is a custom endpoint for S3-compatible stores, e.g.
	// https://minio.example:9000. Empty uses AWS.
	Endpoint string `yaml:"endpoint"`
	// ForcePathStyle addresses the bucket in the path rather than the host
	// name, as most S3-compatible stores need.
	ForcePathStyle bool `yaml:"forcePathStyle"`
	// Prefix starts every key. Cluster and Node name the source in the key.
	Prefix  string `yaml:"prefix"`
	Cluster string `yaml:"cluster"`
	Node    string `yaml:"node"`
	// Compression of each object: zstd, gzip or none.
	Compression string `yaml:"compression"`
	// Format of the audit events in the objects: "audit" (default), the
	// bytes kube-apiserver wrote, or "ocsf", OCSF API Activity events
	// (internal/ocsf). The manifest, the chain and verify cover the bytes
	// stored either way.
	Format string `yaml:"format"`
	// ObjectLock is set on every object.
	ObjectLock ObjectLockConfig `yaml:"objectLock"`
	// ServerSideEncryption: "" (the bucket's default), AES256 or aws:kms.
	ServerSideEncryption string `yaml:"serverSideEncryption"`
	// KMSKeyID is the key for aws:kms; empty uses the account's default key.
	KMSKeyID string `yaml:"kmsKeyId"`
	// StorageClass, e.g. STANDARD_IA; empty uses the bucket's default.
	StorageClass string `yaml:"storageClass"`
	// MultipartThreshold: objects larger than this are sent as a multipart
	// upload of PartSize parts, each with its own checksum.
	MultipartThreshold units.ByteSize `yaml:"multipartThreshold"`
	PartSize           units.ByteSize `yaml:"partSize"`
	// AccessKeyID, SecretAccessKey and SessionToken are static
	// credentials; leave them empty to use the standard AWS chain
	// (environment, shared config, IRSA web identity, EKS Pod Identity,
	// instance role). Use ${ENV} references rather than literal secrets.
	AccessKeyID     string           `yaml:"accessKeyID"`
	SecretAccessKey string           `yaml:"secretAccessKey"`
	SessionToken    string           `yaml:"sessionToken"`
	TLS             tlsconfig.Config `yaml:"tls"`
	// RequestTimeout bounds one upload attempt.
	RequestTimeout units.Duration `yaml:"requestTimeout"`
	// StateDir is where the hash chain's state is kept; set by the agent
	// from its stateDir, not by the configuration.
	StateDir string `yaml:"-"`
}

// ObjectLockConfig is the retention set on every object.
type ObjectLockConfig struct {
	// Mode is COMPLIANCE or GOVERNANCE; empty sets no retention.
	Mode string `yaml:"mode"`
	// Retention is how long each object stays locked, from its upload.
	Retention units.Duration `yaml:"retention"`
	// LegalHold puts a legal hold on every object.
	LegalHold bool `yaml:"legalHold"`
	// Required refuses to start unless the bucket has versioning and
	// Object Lock enabled. Default true; set false for buckets without
	// Object Lock (then Mode must be empty).
	Required *bool `yaml:"required"`
}

// Defaults used when a field is left empty.
const (
	DefaultCompression        = "zstd"
	DefaultMultipartThreshold = 64 << 20
	DefaultPartSize           = 16 << 20
	DefaultRequestTimeout     = 2 * time.Minute
)

// ApplyDefaults fills empty fields.
func (c *Config) ApplyDefaults() {
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	if c.MultipartThreshold == 0 {
		c.MultipartThreshold = DefaultMultipartThreshold
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = units.Duration(DefaultRequestTimeout)
	}
	if c.ObjectLock.Required == nil {
		t := true
		c.ObjectLock.Required = &t
	}
	c.ObjectLock.Mode = strings.ToUpper(c.ObjectLock.Mode)
}

// Insecure describes the settings that expose the events, each with its
// key below the section. SigV4 never sends the secret key; the events
// travel as sent.
func (c *Config) Insecure() []string {
	var out []string
	if strings.HasPrefix(strings.ToLower(c.Endpoint), "http://") {
		out = append(out, "endpoint: http://, events in cleartext")
	}
	if c.TLS.InsecureSkipVerify {
		out = append(out, "tls.insecureSkipVerify: the endpoint's certificate is not verified")
	}
	return out
}

// LockRequired reports whether the bucket must have Object Lock.
func (c *Config) LockRequired() bool { return c.ObjectLock.Required == nil || *c.ObjectLock.Required }

// Validate checks the config. prefix is the YAML path of the section.
func (c *Config) Validate(prefix string) error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(prefix+"."+format, a...)) }
	if c.Bucket == "" {
		add("bucket is required")
	}
	if c.Format != "" && c.Format != "audit" && c.Format != "ocsf" {
		add("format must be audit or ocsf, got %q", c.Format)
	}
	switch c.Compression {
	case "zstd", "gzip", "none":
	default:
		add("compression must be zstd, gzip or none, got %q", c.Compression)
	}
	switch c.ObjectLock.Mode {
	case "":
		if c.LockRequired() {
			add("objectLock.mode is required (COMPLIANCE or GOVERNANCE) unless objectLock.required is false")
		}
	case "COMPLIANCE", "GOVERNANCE":
		if c.ObjectLock.Retention <= 0 {
			add("objectLock.retention must be positive when objectLock.mode is set")
		}
	default:
		add("objectLock.mode must be COMPLIANCE or GOVERNANCE, got %q", c.ObjectLock.Mode)
	}
	if c.ObjectLock.Mode == "" && c.ObjectLock.Retention != 0 {
		add("objectLock.retention needs objectLock.mode")
	}
	switch c.ServerSideEncryption {
	case "", "AES256", "aws:kms", "aws:kms:dsse":
	default:
		add("serverSideEncryption must be AES256, aws:kms or aws:kms:dsse, got %q", c.ServerSideEncryption)
	}
	if c.KMSKeyID != "" && !strings.HasPrefix(c.ServerSideEncryption, "aws:kms") {
		add("kmsKeyId needs serverSideEncryption: aws:kms")
	}
	if c.PartSize < 5<<20 {
		add("partSize must be at least 5MiB (the S3 minimum)")
	}
	if c.MultipartThreshold < c.PartSize {
		add("multipartThreshold must not be below partSize")
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		add("accessKeyID and secretAccessKey must be set together")
	}
	if c.RequestTimeout <= 0 {
		add("requestTimeout must be positive")
	}
	for _, p := range []struct{ k, v string }{{"prefix", c.Prefix}, {"cluster", c.Cluster}, {"node", c.Node}} {
		if strings.ContainsAny(p.v, "\\") || strings.HasPrefix(p.v, "/") && p.k != "prefix" {
			add("%s %q must not contain backslashes or start with a slash", p.k, p.v)
		}
	}
	errs = append(errs, c.TLS.Validate(prefix+".tls"))
	return errors.Join(errs...)
}
