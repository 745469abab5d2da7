// Command interop checks Custody Ledger against Go's golang.org/x/mod/sumdb
// note and tlog packages, an independent implementation of the same specs.
//
// Build with GO111MODULE=off and GOPATH=/usr/share/gocode (Debian's
// golang-golang-x-mod-dev).
//
//	interop verify-log URL VKEY        checkpoint, tiles, entry bundles, and
//	                                   inclusion and consistency proofs built
//	                                   from the tiles
//	interop verify-proof FILE VKEY     a proof file written by `custody prove`
//	interop produce DIR N              a log of N records with a signed
//	                                   checkpoint and proof files, for our
//	                                   verifier to check
package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "interop: "+format+"\n", args...)
	os.Exit(1)
}

// checkpoint opens a signed note and parses its C2SP tlog-checkpoint body.
func checkpoint(msg []byte, vkey string) (origin string, size int64, root tlog.Hash) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		die("verifier key: %v", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		die("open checkpoint: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[3] != "" {
		die("checkpoint body has %d lines", len(lines))
	}
	size, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		die("checkpoint size %q", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		die("checkpoint root %q", lines[2])
	}
	copy(root[:], raw)
	if lines[0] != v.Name() {
		die("origin %q is not the key name %q", lines[0], v.Name())
	}
	return lines[0], size, root
}

// c2spPath is the C2SP tlog-tiles path of t (no height element; data
// tiles are named "entries").
func c2spPath(t tlog.Tile) string {
	old := t.Path() // tile/H/L/NNN[.p/W]
	parts := strings.SplitN(old, "/", 3)
	rest := parts[2]
	if strings.HasPrefix(rest, "data/") {
		rest = "entries/" + strings.TrimPrefix(rest, "data/")
	}
	return "tile/" + rest
}

type httpTiles struct{ base string }

func (h httpTiles) Height() int { return 8 }

func (h httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	var out [][]byte
	for _, t := range tiles {
		b, err := get(h.base + "/" + c2spPath(t))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func (h httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func get(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b, nil
}

func bundle(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			die("truncated entry bundle")
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			die("truncated entry bundle")
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

func verifyLog(base, vkey string) {
	msg, err := get(base + "/checkpoint")
	if err != nil {
		die("%v", err)
	}
	_, size, root := checkpoint(msg, vkey)
	tree := tlog.Tree{N: size, Hash: root}
	r := tlog.TileHashReader(tree, httpTiles{base})
	th, err := tlog.TreeHash(size, r)
	if err != nil || th != root {
		die("tree hash from tiles: %v", err)
	}
	// Every entry in every data tile must hash to the record the tree holds.
	checked := 0
	for start := int64(0); start < size; start += 256 {
		w := size - start
		if w > 256 {
			w = 256
		}
		t := tlog.Tile{H: 8, L: -1, N: start / 256, W: int(w)}
		data, err := get(base + "/" + c2spPath(t))
		if err != nil {
			die("%v", err)
		}
		entries := bundle(data)
		if int64(len(entries)) != w {
			die("entry tile %d has %d entries, want %d", t.N, len(entries), w)
		}
		for i, e := range entries {
			n := start + int64(i)
			p, err := tlog.ProveRecord(size, n, r)
			if err != nil {
				die("prove record %d: %v", n, err)
			}
			if err := tlog.CheckRecord(p, size, root, n, tlog.RecordHash(e)); err != nil {
				die("record %d: %v", n, err)
			}
			checked++
		}
	}
	for _, old := range []int64{1, size / 3, size / 2, size - 1} {
		if old < 1 || old > size {
			continue
		}
		oh, err := tlog.TreeHash(old, r)
		if err != nil {
			die("tree hash %d: %v", old, err)
		}
		p, err := tlog.ProveTree(size, old, r)
		if err != nil {
			die("prove tree %d: %v", old, err)
		}
		if err := tlog.CheckTree(p, size, root, old, oh); err != nil {
			die("tree %d -> %d: %v", old, size, err)
		}
	}
	fmt.Printf("ok: checkpoint of size %d, %d entries checked against tiles\n", size, checked)
}

type proofFile struct {
	Type          string   `json:"type"`
	Checkpoint    string   `json:"checkpoint,omitempty"`
	Index         int64    `json:"index"`
	Entry         string   `json:"entry,omitempty"`
	Proof         []string `json:"proof"`
	OldCheckpoint string   `json:"old_checkpoint,omitempty"`
	NewCheckpoint string   `json:"new_checkpoint,omitempty"`
}

func hashes(p []string) []tlog.Hash {
	var out []tlog.Hash
	for _, s := range p {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != tlog.HashSize {
			die("proof hash %q", s)
		}
		var h tlog.Hash
		copy(h[:], raw)
		out = append(out, h)
	}
	return out
}

func verifyProof(path, vkey string) {
	b, err := os.ReadFile(path)
	if err != nil {
		die("%v", err)
	}
	var f proofFile
	if err := json.Unmarshal(b, &f); err != nil {
		die("%v", err)
	}
	switch f.Type {
	case "inclusion":
		_, size, root := checkpoint([]byte(f.Checkpoint), vkey)
		entry, err := base64.StdEncoding.DecodeString(f.Entry)
		if err != nil {
			die("entry: %v", err)
		}
		if err := tlog.CheckRecord(hashes(f.Proof), size, root, f.Index, tlog.RecordHash(entry)); err != nil {
			die("inclusion: %v", err)
		}
		fmt.Printf("ok: entry %d in tree of size %d\n", f.Index, size)
	case "consistency":
		_, n, oh := checkpoint([]byte(f.OldCheckpoint), vkey)
		_, t, th := checkpoint([]byte(f.NewCheckpoint), vkey)
		if err := tlog.CheckTree(hashes(f.Proof), t, th, n, oh); err != nil {
			die("consistency: %v", err)
		}
		fmt.Printf("ok: tree %d extends tree %d\n", t, n)
	default:
		die("unknown proof type %q", f.Type)
	}
}

type memHashes map[int64]tlog.Hash

func (m memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		h, ok := m[x]
		if !ok {
			return nil, fmt.Errorf("missing hash %d", x)
		}
		out[i] = h
	}
	return out, nil
}

func sign(s note.Signer, origin string, size int64, m memHashes) string {
	h, err := tlog.TreeHash(size, m)
	if err != nil {
		die("%v", err)
	}
	text := fmt.Sprintf("%s\n%d\n%s\n", origin, size, base64.StdEncoding.EncodeToString(h[:]))
	msg, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		die("%v", err)
	}
	return string(msg)
}

func b64(p []tlog.Hash) []string {
	out := []string{}
	for _, h := range p {
		out = append(out, base64.StdEncoding.EncodeToString(h[:]))
	}
	return out
}

func write(path string, v interface{}) {
	b, _ := json.MarshalIndent(v, "", "  ")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		die("%v", err)
	}
}

func produce(dir string, n int64) {
	origin := "go.example/interop"
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		die("%v", err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		die("%v", err)
	}
	m := memHashes{}
	var records [][]byte
	for i := int64(0); i < n; i++ {
		rec := []byte(fmt.Sprintf("go record %d", i))
		records = append(records, rec)
		hs, err := tlog.StoredHashes(i, rec, m)
		if err != nil {
			die("%v", err)
		}
		for k, h := range hs {
			m[tlog.StoredHashIndex(0, i)+int64(k)] = h
		}
	}
	old := n / 2
	newCp := sign(s, origin, n, m)
	oldCp := sign(s, origin, old, m)
	idx := n / 3
	rp, err := tlog.ProveRecord(n, idx, m)
	if err != nil {
		die("%v", err)
	}
	tp, err := tlog.ProveTree(n, old, m)
	if err != nil {
		die("%v", err)
	}
	os.WriteFile(filepath.Join(dir, "go.vkey"), []byte(vkey+"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "checkpoint"), []byte(newCp), 0o644)
	write(filepath.Join(dir, "inclusion.json"), proofFile{Type: "inclusion", Checkpoint: newCp, Index: idx,
		Entry: base64.StdEncoding.EncodeToString(records[idx]), Proof: b64(rp)})
	write(filepath.Join(dir, "consistency.json"), map[string]interface{}{"type": "consistency",
		"old_checkpoint": oldCp, "new_checkpoint": newCp, "proof": b64(tp)})
	fmt.Println("ok")
}

func main() {
	if len(os.Args) < 4 {
		die("usage: interop verify-log URL VKEYFILE | verify-proof FILE VKEYFILE | produce DIR N")
	}
	switch os.Args[1] {
	case "verify-log", "verify-proof":
		vkey, err := os.ReadFile(os.Args[3])
		if err != nil {
			die("%v", err)
		}
		if os.Args[1] == "verify-log" {
			verifyLog(strings.TrimRight(os.Args[2], "/"), string(vkey))
		} else {
			verifyProof(os.Args[2], string(vkey))
		}
	case "produce":
		n, err := strconv.ParseInt(os.Args[3], 10, 64)
		if err != nil || n < 2 {
			die("N must be at least 2")
		}
		produce(os.Args[2], n)
	default:
		die("unknown command %q", os.Args[1])
	}
}
