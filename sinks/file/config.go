package file

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/auditrail/auditrail/internal/units"
)

// Config configures the file sink.
type Config struct {
	// Directory receives the NDJSON files. Created if missing.
	Directory string `yaml:"directory"`
	// MaxFileBytes rotates to a new file once the current one reaches this
	// size.
	MaxFileBytes units.ByteSize `yaml:"maxFileBytes"`
	// MaxFiles removes the oldest files beyond this count; 0 keeps all.
	MaxFiles int `yaml:"maxFiles"`
	// Format of the audit events: "audit" (default), as kube-apiserver
	// wrote them, or "ocsf", as OCSF API Activity events (internal/ocsf).
	Format string `yaml:"format"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{MaxFileBytes: 128 << 20}
}

// ApplyDefaults fills empty fields from DefaultConfig.
func (c *Config) ApplyDefaults() {
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = DefaultConfig().MaxFileBytes
	}
}

// ResolvePaths makes a relative Directory relative to stateDir, the
// agent's state directory.
func (c *Config) ResolvePaths(stateDir string) {
	if c.Directory != "" && !filepath.IsAbs(c.Directory) {
		c.Directory = filepath.Join(stateDir, c.Directory)
	}
}

// Validate checks the config. prefix is the YAML path of the section.
func (c *Config) Validate(prefix string) error {
	var errs []error
	if c.Directory == "" {
		errs = append(errs, fmt.Errorf("%s.directory is required", prefix))
	}
	if c.MaxFileBytes <= 0 {
		errs = append(errs, fmt.Errorf("%s.maxFileBytes must be positive", prefix))
	}
	if c.Format != "" && c.Format != "audit" && c.Format != "ocsf" {
		errs = append(errs, fmt.Errorf("%s.format must be audit or ocsf, got %q", prefix, c.Format))
	}
	if c.MaxFiles < 0 {
		errs = append(errs, fmt.Errorf("%s.maxFiles must not be negative", prefix))
	}
	return errors.Join(errs...)
}
