package agent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/file"
)

// Everything the agent writes under its state directory (checkpoint, chain
// state, dead letters, the file sink's archive) is 0700 for directories
// and 0600 for files, readable by root alone, whether the state directory
// was made by the kubelet (hostPath DirectoryOrCreate: 0755) or, as the
// file sink starts first, by the file sink.
func TestStateIsPrivate(t *testing.T) {
	for name, pre := range map[string]fs.FileMode{"made by the file sink": 0, "hostPath 0755": 0o755} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			if pre != 0 {
				if err := os.Mkdir(e.state, pre); err != nil {
					t.Fatal(err)
				}
				os.Chmod(e.state, pre) // past the umask
			}
			fcfg := file.DefaultConfig()
			fcfg.Directory = filepath.Join(e.state, "archive")
			fsink, err := file.New("archive", fcfg)
			if err != nil {
				t.Fatal(err)
			}
			dl := &recSink{name: "rec", fail: func(call int) error {
				if call == 1 {
					return sinks.Permanent(errors.New("mapping error"))
				}
				return nil
			}}
			appendLines(t, e.live, events(0, 5)...)
			stop := e.start(e.options(), fsink, dl)
			eventually(t, "dead-letter and archive files", func() bool {
				d, _ := filepath.Glob(filepath.Join(e.state, "dead-letter", "rec", "*.ndjson"))
				a, _ := filepath.Glob(filepath.Join(e.state, "archive", "*"))
				return len(d) == 1 && len(a) > 0
			})
			stop()
			n := 0
			filepath.WalkDir(e.state, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					t.Fatal(err)
				}
				fi, err := d.Info()
				if err != nil {
					t.Fatal(err)
				}
				want := fs.FileMode(0o600)
				if d.IsDir() {
					want = 0o700
				}
				if fi.Mode().Perm() != want {
					t.Errorf("%s is %v, want %v", p, fi.Mode().Perm(), want)
				}
				n++
				return nil
			})
			if n < 6 {
				t.Errorf("only %d paths under the state directory", n)
			}
		})
	}
}
