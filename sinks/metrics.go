package sinks

import "github.com/prometheus/client_golang/prometheus"

// Register registers a sink's own collectors; reg may be nil.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
