package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/s3cache/s3cache/signature"
)

func init() { register(newKeygenCommand) }

type keygenOptions struct {
	name  string
	force bool
}

func newKeygenCommand() *cobra.Command {
	var o keygenOptions
	cmd := &cobra.Command{
		Use:   "keygen NAME",
		Short: "Write an Ed25519 key pair for signing cache manifests",
		Long: `Write a new Ed25519 key pair: NAME.key (the private key, mode 0600) and
NAME.pub (the public key), each one line of text. Give the contents of
NAME.key to cache exports as signing_key, and of NAME.pub to cache imports
as verify_key (and to s3cache verify and inspect). See docs/security.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name = args[0]
			return runKeygen(cmd, o)
		},
	}
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite NAME.key and NAME.pub if they exist")
	return cmd
}

func runKeygen(cmd *cobra.Command, o keygenOptions) error {
	k, err := signature.Generate(nil)
	if err != nil {
		return err
	}
	keyPath, pubPath := o.name+".key", o.name+".pub"
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if o.force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	if err := writeKeyFile(keyPath, k.Text(), flags, 0o600); err != nil {
		return err
	}
	if err := writeKeyFile(pubPath, k.Public().Text(), flags, 0o644); err != nil {
		// Half a pair is no use; the private key was only just written.
		_ = os.Remove(keyPath)
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (private: give it to signing_key, keep it secret) and %s (public: verify_key)\nkey id %s\n",
		keyPath, pubPath, k.Public().ID())
	return nil
}

func writeKeyFile(path, text string, flags int, mode fs.FileMode) error {
	f, err := os.OpenFile(path, flags, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("write key: %s exists; choose another name or pass --force", path)
	}
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	// OpenFile's mode applies only to a new file, and through the umask.
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return fmt.Errorf("write key %s: %w", filepath.Base(path), err)
	}
	if _, err := f.WriteString(text + "\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("write key %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return nil
}
