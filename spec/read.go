package spec

import "io"

// Read parses a spec from r, such as standard input; name is used in
// messages, dir resolves relative paths. At most one byte more than a spec
// may hold is read, so an endless input is refused, not buffered.
func Read(name, dir string, r io.Reader) (*Document, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSpecBytes+1))
	if err != nil {
		return nil, err
	}
	return Parse(name, dir, data)
}
