// Package tlsconfig turns the TLS section shared by the network sinks into
// a crypto/tls configuration. Verification is on unless the configuration
// turns it off explicitly.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Config is the tls section of a sink.
type Config struct {
	// CAFile is a PEM bundle of CAs to trust in addition to the system's.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are a client certificate for mutual TLS.
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// ServerName overrides the name verified in the server's certificate.
	ServerName string `yaml:"serverName"`
	// InsecureSkipVerify turns certificate verification off. Never use it
	// in production: anyone on the path can read and change the stream.
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
}

// Validate checks the section. prefix is its YAML path.
func (c *Config) Validate(prefix string) error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return fmt.Errorf("%s.certFile and %s.keyFile must be set together", prefix, prefix)
	}
	return nil
}

// IsZero reports whether nothing is configured.
func (c *Config) IsZero() bool { return *c == Config{} }

// Build returns the crypto/tls configuration.
func (c *Config) Build() (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("CA file " + c.CAFile + " holds no PEM certificate")
		}
		t.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}
