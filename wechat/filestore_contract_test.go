package wechat_test

import (
	"path/filepath"
	"testing"

	"github.com/wxcentral/wxcentral/wechat"
	"github.com/wxcentral/wxcentral/wechat/storetest"
)

// TestFileStoreContract runs the Store contract suite on the file store.
// Each handle is a separate FileStore on the same path, as a separate
// process on the same host would have.
func TestFileStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Factory {
		path := filepath.Join(t.TempDir(), "wechat.txt")
		return func(t *testing.T) wechat.Store { return wechat.NewFileStore(path, nil) }
	})
}
