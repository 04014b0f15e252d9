// Package sdktest runs a real WeChat SDK, unchanged, against wxcentral's
// gateway on the fake WeChat: silenceper/wechat v2, pointed at the gateway
// by its util.SetURIModifier as a user would. It is a module of its own so
// that the SDK is never a dependency of wxcentral itself.
package sdktest
