// Command cosig checks C2SP tlog-cosignature v1 (Ed25519) witness
// cosignatures on a C2SP tlog-checkpoint signed note, independently of
// Custody Ledger's Rust code: it is written from the specs
// (c2sp.org/signed-note, c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature)
// with only the Go standard library.
//
//	cosig NOTE_FILE LOG_VKEY WITNESS_VKEY...
//
// It prints "ok: ..." and exits 0 only if the note is well formed, its
// body is a checkpoint of the log key's origin, every signature line of the
// log key verifies (at least one present), and every witness key given has
// at least one signature line and all of its lines verify. Lines of other
// keys are ignored, as signed-note requires. Build with GO111MODULE=off.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	typeEd25519     = 0x01
	typeCosignature = 0x04
	maxTime         = 1<<63 - 1
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "cosig: "+format+"\n", args...)
	os.Exit(1)
}

type key struct {
	name string
	id   uint32
	pub  ed25519.PublicKey
}

// keyID is SHA-256(name || 0x0A || type || public key)[:4], big-endian.
func keyID(name string, typ byte, pub []byte) uint32 {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{'\n', typ})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil)[:4])
}

// parseVkey parses <name>+<hex key ID>+<base64(type || Ed25519 key)>.
func parseVkey(vkey string, typ byte) key {
	parts := strings.SplitN(strings.TrimSpace(vkey), "+", 3)
	if len(parts) != 3 || parts[0] == "" || len(parts[1]) != 8 {
		die("malformed vkey %q", vkey)
	}
	id, err := hex.DecodeString(parts[1])
	if err != nil {
		die("vkey key ID %q: %v", parts[1], err)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize {
		die("vkey key %q", parts[2])
	}
	if raw[0] != typ {
		die("vkey %q has type 0x%02x, want 0x%02x", vkey, raw[0], typ)
	}
	k := key{name: parts[0], id: binary.BigEndian.Uint32(id), pub: raw[1:]}
	if want := keyID(k.name, typ, k.pub); want != k.id {
		die("vkey %q: key ID %08x, computed %08x", vkey, k.id, want)
	}
	return k
}

type sigLine struct {
	name string
	id   uint32
	sig  []byte
}

// parseNote splits a signed note into its text (with the final newline)
// and its signature lines.
func parseNote(msg []byte) ([]byte, []sigLine) {
	if !utf8.Valid(msg) {
		die("note is not UTF-8")
	}
	for _, c := range msg {
		if c < 0x20 && c != '\n' {
			die("note has control character 0x%02x", c)
		}
	}
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		die("note has no blank line before its signatures")
	}
	text, block := msg[:i+1], msg[i+2:]
	if len(block) == 0 || block[len(block)-1] != '\n' {
		die("signature block does not end in a newline")
	}
	var sigs []sigLine
	for _, line := range strings.Split(string(block[:len(block)-1]), "\n") {
		if !strings.HasPrefix(line, "\u2014 ") {
			die("signature line %q does not start with an em dash and a space", line)
		}
		fields := strings.SplitN(line[len("\u2014 "):], " ", 2)
		if len(fields) != 2 || fields[0] == "" || strings.Contains(fields[0], "+") {
			die("malformed signature line %q", line)
		}
		raw, err := base64.StdEncoding.DecodeString(fields[1])
		if err != nil || len(raw) < 5 {
			die("malformed signature in line %q", line)
		}
		sigs = append(sigs, sigLine{fields[0], binary.BigEndian.Uint32(raw[:4]), raw[4:]})
	}
	return text, sigs
}

// checkpoint parses a tlog-checkpoint body: origin, size, base64 root, and
// optional non-empty extension lines.
func checkpoint(text []byte) (origin string, size uint64) {
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 3 {
		die("checkpoint has %d lines", len(lines))
	}
	for _, l := range lines {
		if l == "" {
			die("checkpoint has an empty line")
		}
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		die("checkpoint size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != sha256.Size {
		die("checkpoint root %q", lines[2])
	}
	return lines[0], size
}

func main() {
	if len(os.Args) < 4 {
		die("usage: cosig NOTE_FILE LOG_VKEY WITNESS_VKEY...")
	}
	msg, err := os.ReadFile(os.Args[1])
	if err != nil {
		die("%v", err)
	}
	text, sigs := parseNote(msg)
	log := parseVkey(os.Args[2], typeEd25519)
	origin, size := checkpoint(text)
	if origin != log.name {
		die("checkpoint origin %q is not the log key's %q", origin, log.name)
	}

	logSigned := false
	for _, s := range sigs {
		if s.name != log.name || s.id != log.id {
			continue
		}
		if len(s.sig) != ed25519.SignatureSize || !ed25519.Verify(log.pub, text, s.sig) {
			die("log signature by %s does not verify", log.name)
		}
		logSigned = true
	}
	if !logSigned {
		die("no signature by the log key %s", log.name)
	}

	var report []string
	for _, vkey := range os.Args[3:] {
		w := parseVkey(vkey, typeCosignature)
		cosigned := false
		for _, s := range sigs {
			if s.name != w.name || s.id != w.id {
				continue
			}
			// timestamped_signature: u64 big-endian time || Ed25519 signature.
			if len(s.sig) != 8+ed25519.SignatureSize {
				die("cosignature by %s is %d bytes, want 72", w.name, len(s.sig))
			}
			t := binary.BigEndian.Uint64(s.sig[:8])
			if t > maxTime {
				die("cosignature by %s has time %d > 2^63-1", w.name, t)
			}
			signed := []byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t))
			signed = append(signed, text...)
			if !ed25519.Verify(w.pub, signed, s.sig[8:]) {
				die("cosignature by %s (key %08x) at time %d does not verify", w.name, w.id, t)
			}
			cosigned = true
			report = append(report, fmt.Sprintf("%s at %d", w.name, t))
		}
		if !cosigned {
			die("no cosignature by %s (key %08x)", w.name, w.id)
		}
	}
	fmt.Printf("ok: %s size %d signed by the log, cosigned by %s\n", origin, size, strings.Join(report, ", "))
}
