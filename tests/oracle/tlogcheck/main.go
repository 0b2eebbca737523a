// Command tlogcheck checks Warden's transparency-log artefacts with Go's reference code,
// golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog, as Debian packages them
// (golang-golang-x-mod-dev), built in GOPATH mode. An independent oracle for the tests: it shares
// no code with Warden.
//
//	tlogcheck proof -log VKEY [-witness VKEY]... [-quorum N] -leaf HEX < receipt.tlog-proof
//	tlogcheck consistency -log VKEY -old FILE -new FILE < proof-lines
//
// proof: the c2sp.org/tlog-proof receipt's checkpoint verifies under the log's key, at least
// N witnesses' cosignature/v1 verify, and its inclusion proof puts the leaf (the 32-byte record
// hashed as an RFC 6962 leaf) at its index. consistency: both checkpoints verify under the log's
// key and the proof (base64 hashes, one per line) shows the old tree is a prefix of the new one.
// Prints "ok ..." and exits 0, or prints why and exits 1.
package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// cosigner verifies c2sp.org/tlog-cosignature v1 signatures (type 0x04), which x/mod's note
// package does not know: it takes any note.Verifier.
type cosigner struct {
	name string
	hash uint32
	key  ed25519.PublicKey
}

func (c *cosigner) Name() string    { return c.name }
func (c *cosigner) KeyHash() uint32 { return c.hash }
func (c *cosigner) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	signed := append([]byte(fmt.Sprintf("cosignature/v1\ntime %d\n", t)), msg...)
	return ed25519.Verify(c.key, signed, sig[8:])
}

func newCosigner(vkey string) (*cosigner, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("malformed witness vkey")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 0x04 {
		return nil, errors.New("a witness vkey holds 0x04 and a 32-byte Ed25519 key")
	}
	h := sha256.Sum256(append([]byte(parts[0]+"\n"), raw...))
	hash := binary.BigEndian.Uint32(h[:4])
	if fmt.Sprintf("%08x", hash) != parts[1] {
		return nil, errors.New("the witness vkey's key hash does not match its key")
	}
	return &cosigner{name: parts[0], hash: hash, key: ed25519.PublicKey(raw[1:])}, nil
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

func parseCheckpoint(text string) (checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 {
		return checkpoint{}, errors.New("a checkpoint has an origin, a size and a root line")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		return checkpoint{}, errors.New("bad tree size")
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return checkpoint{}, errors.New("bad root hash")
	}
	return checkpoint{lines[0], size, root}, nil
}

func openCheckpoint(msg []byte, logKey string, witnesses []string, quorum int) (checkpoint, error) {
	logVerifier, err := note.NewVerifier(logKey)
	if err != nil {
		return checkpoint{}, fmt.Errorf("log key: %v", err)
	}
	verifiers := []note.Verifier{logVerifier}
	for _, w := range witnesses {
		c, err := newCosigner(w)
		if err != nil {
			return checkpoint{}, err
		}
		verifiers = append(verifiers, c)
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		return checkpoint{}, fmt.Errorf("note: %v", err)
	}
	logSigned, cosigned := false, 0
	for _, s := range n.Sigs {
		if s.Name == logVerifier.Name() && s.Hash == logVerifier.KeyHash() {
			logSigned = true
		} else {
			cosigned++
		}
	}
	if !logSigned {
		return checkpoint{}, errors.New("the log's signature is missing")
	}
	if cosigned < quorum {
		return checkpoint{}, fmt.Errorf("%d witness cosignature(s) verify, the policy asks for %d", cosigned, quorum)
	}
	return parseCheckpoint(n.Text)
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func proof(args []string) error {
	fs := flag.NewFlagSet("proof", flag.ContinueOnError)
	logKey := fs.String("log", "", "the log's vkey")
	leafHex := fs.String("leaf", "", "the 32-byte record, hex")
	quorum := fs.Int("quorum", 0, "witness cosignatures required")
	var witnesses multi
	fs.Var(&witnesses, "witness", "a witness's vkey (repeat)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	head, body, found := bytes.Cut(data, []byte("\n\n"))
	if !found {
		return errors.New("no blank line before the checkpoint")
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		return errors.New("not a c2sp.org/tlog-proof@v1")
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		lines = lines[1:]
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		return errors.New("no index line")
	}
	index, err := strconv.ParseInt(strings.TrimPrefix(lines[0], "index "), 10, 64)
	if err != nil {
		return errors.New("bad index")
	}
	var path tlog.RecordProof
	for _, l := range lines[1:] {
		h, err := tlog.ParseHash(l)
		if err != nil {
			return fmt.Errorf("bad proof line %q", l)
		}
		path = append(path, h)
	}
	cp, err := openCheckpoint(body, *logKey, witnesses, *quorum)
	if err != nil {
		return err
	}
	leaf, err := hex.DecodeString(*leafHex)
	if err != nil {
		return errors.New("bad -leaf")
	}
	if err := tlog.CheckRecord(path, cp.size, cp.root, index, tlog.RecordHash(leaf)); err != nil {
		return fmt.Errorf("inclusion: %v", err)
	}
	fmt.Printf("ok %s index %d of %d\n", cp.origin, index, cp.size)
	return nil
}

func consistency(args []string) error {
	fs := flag.NewFlagSet("consistency", flag.ContinueOnError)
	logKey := fs.String("log", "", "the log's vkey")
	oldFile := fs.String("old", "", "the older checkpoint")
	newFile := fs.String("new", "", "the newer checkpoint")
	if err := fs.Parse(args); err != nil {
		return err
	}
	checkpoints := []checkpoint{}
	for _, f := range []string{*oldFile, *newFile} {
		msg, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		cp, err := openCheckpoint(msg, *logKey, nil, 0)
		if err != nil {
			return fmt.Errorf("%s: %v", f, err)
		}
		checkpoints = append(checkpoints, cp)
	}
	var path tlog.TreeProof
	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		if scanner.Text() == "" {
			continue
		}
		h, err := tlog.ParseHash(scanner.Text())
		if err != nil {
			return fmt.Errorf("bad proof line %q", scanner.Text())
		}
		path = append(path, h)
	}
	old, new := checkpoints[0], checkpoints[1]
	if old.origin != new.origin {
		return errors.New("two logs' checkpoints")
	}
	if err := tlog.CheckTree(path, new.size, new.root, old.size, old.root); err != nil {
		return fmt.Errorf("consistency: %v", err)
	}
	fmt.Printf("ok %s %d is a prefix of %d\n", old.origin, old.size, new.size)
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck proof|consistency ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "proof":
		err = proof(os.Args[2:])
	case "consistency":
		err = consistency(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
}
