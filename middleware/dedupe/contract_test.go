package dedupe_test

import (
	"testing"

	"github.com/wxcentral/wxcentral/middleware/dedupe"
	"github.com/wxcentral/wxcentral/middleware/dedupe/dedupetest"
)

func TestMemoryContract(t *testing.T) {
	dedupetest.Run(t, func(*testing.T) dedupe.Store { return &dedupe.Memory{} })
}
