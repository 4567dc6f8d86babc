package s3_test

import (
	"context"
	"encoding/json"

	"github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/verify"
)

func init() {
	s3.VerifyArchive = func(ctx context.Context, cfg s3.Config) ([]byte, error) {
		rep, err := verify.Archive(ctx, cfg, verify.Options{RequireLock: true})
		if err != nil {
			return nil, err
		}
		return json.Marshal(rep)
	}
}
