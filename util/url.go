package util

import (
	"errors"
	"net/url"
)

// ParseHTTPURL parses raw as an absolute http or https URL with a host,
// the one check of the URLs wxcentral is given (a page to sign for the
// JS-SDK, a callback to call). Its errors never quote raw, which may hold
// a password.
func ParseHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("not an http:// or https:// URL")
	case u.Host == "":
		return nil, errors.New("no host")
	}
	return u, nil
}

// ParseHTTPBase parses raw as the base URL of an HTTP API: ParseHTTPURL's
// checks, and no user, query or fragment, since paths are appended to it.
func ParseHTTPBase(raw string) (*url.URL, error) {
	u, err := ParseHTTPURL(raw)
	switch {
	case err != nil:
		return nil, err
	case u.User != nil:
		return nil, errors.New("has a user: give the scheme, host and at most a path prefix")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, errors.New("has a query: give the scheme, host and at most a path prefix")
	case u.Fragment != "":
		return nil, errors.New("has a fragment: give the scheme, host and at most a path prefix")
	}
	return u, nil
}
