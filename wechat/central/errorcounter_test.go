package central

import "github.com/wxcentral/wxcentral/wechat/redisstore"

// The Redis store is the ErrorCounter the metrics export.
var _ ErrorCounter = (*redisstore.Store)(nil)
