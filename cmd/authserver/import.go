package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/quanux/authserver/oauth"
	"github.com/quanux/authserver/storage"
)

// maxImportLineBytes bounds one line of a users import file.
const maxImportLineBytes = 64 << 10

// importLine is one line of a users import file.
type importLine struct {
	Username     string   `json:"username"`
	PasswordHash string   `json:"password_hash"`
	Scopes       []string `json:"scopes"`
}

// importFailure is a line that was not imported, and why. The reason never
// contains the line's password hash.
type importFailure struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// importReport is the result of users import, also its --json output.
type importReport struct {
	Imported int             `json:"imported"`
	Failed   []importFailure `json:"failed"`
}

func newUsersImportCommand(o *options) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Create users from a file of existing password hashes",
		Long: `Create users from FILE ("-" reads standard input), which has one JSON object per line:

  {"username": "alice", "password_hash": "$2b$12$…", "scopes": ["strategy:read", "forge:write"]}

password_hash is a bcrypt hash ($2a$, $2b$ or $2y$, cost 4 to 14) or an argon2id PHC string
($argon2id$v=19$m=…,t=…,p=…$salt$hash). scopes may be left out. Blank lines are skipped, and lines may be
at most 64 KiB. Users log in with their old passwords; a bcrypt hash, or an argon2id hash weaker than the
server's, is replaced by a current argon2id hash at the first successful login.

Every line is tried: a line that fails (a malformed line, an unknown field, an invalid username, hash or
scope, a username that exists) is reported with its line number on standard error, and the others are
still imported. The command prints how many users it imported and exits with status 1 if any line failed.
It never prints a password hash.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, closeInput, err := openImportFile(cmd, args[0])
			if err != nil {
				return err
			}
			defer closeInput()

			var report importReport
			ran := false
			err = o.withAccounts(cmd, func(ctx context.Context, acc *oauth.Accounts, _ *storage.Store) error {
				var ierr error
				report, ierr = importUsers(ctx, acc, in)
				ran = true
				return ierr
			})
			if !ran {
				return err
			}

			// The report comes first, also when the import stopped early,
			// so the operator sees which lines are already in.
			out := cmd.OutOrStdout()
			if asJSON {
				if jerr := json.NewEncoder(out).Encode(report); jerr != nil {
					return errors.Join(err, jerr)
				}
			} else {
				for _, f := range report.Failed {
					fmt.Fprintf(cmd.ErrOrStderr(), "line %d: %s\n", f.Line, f.Error)
				}
				fmt.Fprintf(out, "imported %s; %s failed\n", countOf(report.Imported, "user"), countOf(len(report.Failed), "line"))
			}
			if err != nil {
				return err
			}
			if len(report.Failed) > 0 {
				return fmt.Errorf("%s of %s not imported", countOf(len(report.Failed), "line"), args[0])
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"imported": N, "failed": [{"line": N, "error": "…"}]} instead of text`)
	return cmd
}

// openImportFile opens path, or standard input for "-".
func openImportFile(cmd *cobra.Command, path string) (io.Reader, func(), error) {
	if path == "-" {
		return cmd.InOrStdin(), func() {}, nil
	}
	f, err := os.Open(path) //nolint:gosec // the operator names this file
	if err != nil {
		return nil, nil, fmt.Errorf("open import file: %w", err)
	}
	return f, func() { _ = f.Close() }, nil
}

// importUsers creates a user for each line of r. A line that fails is
// recorded in the report, and the next line is tried. An error that is not
// about one line, such as a database outage, stops the import and is
// returned with the report so far.
func importUsers(ctx context.Context, acc *oauth.Accounts, r io.Reader) (importReport, error) {
	report := importReport{Failed: []importFailure{}}
	br := bufio.NewReaderSize(r, maxImportLineBytes)
	for lineNo := 1; ; lineNo++ {
		line, tooLong, err := readImportLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return report, fmt.Errorf("read line %d: %w", lineNo, err)
		}

		switch {
		case tooLong:
			report.Failed = append(report.Failed, importFailure{Line: lineNo, Error: fmt.Sprintf("line longer than %d bytes", maxImportLineBytes)})
		case len(bytes.TrimSpace(line)) > 0:
			problem, ierr := importUser(ctx, acc, line)
			if ierr != nil {
				return report, fmt.Errorf("line %d: %w", lineNo, ierr)
			}
			if problem != "" {
				report.Failed = append(report.Failed, importFailure{Line: lineNo, Error: problem})
			} else {
				report.Imported++
			}
		}

		if errors.Is(err, io.EOF) {
			return report, nil
		}
	}
}

// readImportLine returns the next line without its line ending. A line
// longer than the reader's buffer is skipped to its end and reported with
// tooLong. At the end of the input it returns io.EOF together with the
// last line, which may be empty.
func readImportLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	line, err = br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return bytes.TrimRight(line, "\r\n"), false, err
	}
	// Each call consumes up to one buffer of the overlong line, so this
	// ends at its newline or at the end of the input.
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = br.ReadSlice('\n')
	}
	return nil, true, err
}

// importUser creates the user of one line. It returns a problem to report
// for that line, or an error that should stop the import.
func importUser(ctx context.Context, acc *oauth.Accounts, line []byte) (string, error) {
	var in importLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return describeJSONError(err), nil
	}
	if dec.More() {
		return "data after the JSON object", nil
	}
	if in.Username == "" {
		return `field "username" is missing`, nil
	}
	if in.PasswordHash == "" {
		return fmt.Sprintf(`user %q: field "password_hash" is missing`, in.Username), nil
	}

	_, err := acc.ImportUser(ctx, oauth.UserImport{Username: in.Username, PasswordHash: in.PasswordHash, Scopes: in.Scopes})
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, storage.ErrConflict):
		return fmt.Sprintf("user %q already exists", in.Username), nil
	case errors.Is(err, oauth.ErrInvalidInput):
		// Validation messages name the problem and never the hash.
		return fmt.Sprintf("user %q: %s", in.Username, strings.TrimPrefix(err.Error(), oauth.ErrInvalidInput.Error()+": ")), nil
	default:
		return "", err
	}
}

// describeJSONError explains why a line did not decode, without quoting
// the line, which may hold a password hash.
func describeJSONError(err error) string {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		return fmt.Sprintf("not a valid JSON object (syntax error at byte %d)", syntaxErr.Offset)
	case errors.As(err, &typeErr) && typeErr.Field != "":
		return fmt.Sprintf("field %q has the wrong type; want %s", typeErr.Field, typeErr.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "not a complete JSON object"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json reports only the field name here.
		return strings.TrimPrefix(err.Error(), "json: ")
	default:
		return "not a JSON object with the fields username, password_hash and scopes"
	}
}
