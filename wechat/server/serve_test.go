package server

import (
	"testing"

	"github.com/wxcentral/wxcentral/config"
)

func TestNeeds(t *testing.T) {
	const all = config.NeedCallback | config.NeedKeeper | config.NeedAdmin
	tests := []struct {
		name string
		cfg  config.Config
		want config.Need
	}{
		{"token only: the original Koa app", config.Config{Token: "t"}, config.NeedCallback},
		{"app id and secret: central server", config.Config{Token: "t", AppID: "wx1", AppSecret: "s"}, all},
		{"secret alone: a keeper missing its app id", config.Config{Token: "t", AppSecret: "s"}, all},
		{"app id alone: a forgotten secret", config.Config{Token: "t", AppID: "wx1"}, all},
		{"app id and aes key: safe-mode callbacks only", config.Config{Token: "t", AppID: "wx1", EncodingAESKey: "k"}, config.NeedCallback},
		{"safe mode and a secret: everything", config.Config{Token: "t", AppID: "wx1", AppSecret: "s", EncodingAESKey: "k"}, all},
	}
	for _, tt := range tests {
		if got := Needs(tt.cfg); got != tt.want {
			t.Errorf("%s: Needs = %v, want %v", tt.name, got, tt.want)
		}
	}
}
