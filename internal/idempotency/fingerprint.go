package idempotency

import "strings"

// A record's fingerprint is "F|G". F is what the whole intent asks for,
// card included: one or more values separated by ',', each under a scheme
// named before its first ':' (a key's id, or the unkeyed hash). G is what
// the intent asks for without its card. Either part may be empty: a pod
// that cannot read the card knows only G. Two fingerprints conflict when
// both have G and the Gs differ, or when they hold an F under the same
// scheme with different values; Fs under schemes only one side has (a key
// rotation, a pod without a key) are not compared. A claim leaves the
// record with every scheme either side had. A fingerprint without '|'
// (written before G existed) is an F alone. The Lua scripts implement the
// same rule (luaFingerprint).

func fingerprintParts(fp string) (fs []string, g string) {
	f, g, ok := strings.Cut(fp, "|")
	if !ok {
		f, g = fp, ""
	}
	for _, x := range strings.Split(f, ",") {
		if x != "" {
			fs = append(fs, x)
		}
	}
	return fs, g
}

func fingerprintScheme(f string) string {
	s, _, ok := strings.Cut(f, ":")
	if !ok {
		return ""
	}
	return s
}

// findScheme returns the first of fs under scheme.
func findScheme(fs []string, scheme string) (string, bool) {
	for _, y := range fs {
		if fingerprintScheme(y) == scheme {
			return y, true
		}
	}
	return "", false
}

// FingerprintsConflict reports whether a claim with fingerprint given is
// another intent than the record with fingerprint stored.
func FingerprintsConflict(stored, given string) bool {
	if stored == "" || given == "" {
		return false
	}
	sf, sg := fingerprintParts(stored)
	gf, gg := fingerprintParts(given)
	if sg != "" && gg != "" && sg != gg {
		return true
	}
	for _, x := range gf {
		if y, ok := findScheme(sf, fingerprintScheme(x)); ok && y != x {
			return true
		}
	}
	return false
}

// fingerprintVouches reports whether given proves itself the record's
// intent: it holds an F part under a keyed scheme (one that covers the
// whole card) equal to the record's. An unkeyed scheme (named "u…") covers
// the card only in part (two cards that share its BIN, last four and expiry
// are one to it), and a cardless fingerprint covers no card at all.
// Only a claim that takes the record for an attempt, or one that vouches
// so, may add parts to the record: a claim that is merely not a conflict
// (nothing comparable) must not teach the record another intent's card.
func fingerprintVouches(stored, given string) bool {
	if stored == "" || given == "" {
		return false
	}
	sf, _ := fingerprintParts(stored)
	gf, _ := fingerprintParts(given)
	for _, x := range gf {
		scheme := fingerprintScheme(x)
		if scheme == "" || strings.HasPrefix(scheme, "u") {
			continue
		}
		if y, ok := findScheme(sf, scheme); ok && y == x {
			return true
		}
	}
	return false
}

// mergeFingerprint is what a claim leaves on the record: the stored parts,
// completed by the given ones under schemes the record had not seen.
func mergeFingerprint(stored, given string) string {
	if given == "" {
		return stored
	}
	if stored == "" {
		return given
	}
	sf, sg := fingerprintParts(stored)
	gf, gg := fingerprintParts(given)
	for _, x := range gf {
		if _, ok := findScheme(sf, fingerprintScheme(x)); !ok {
			sf = append(sf, x)
		}
	}
	if sg == "" {
		sg = gg
	}
	return strings.Join(sf, ",") + "|" + sg
}

// luaFingerprint defines fpConflict, fpVouches and fpMerge in a script (see
// FingerprintsConflict, fingerprintVouches and mergeFingerprint).
const luaFingerprint = `
local function fpParts(x)
  local a, b = string.match(x, '^([^|]*)|(.*)$')
  if not a then a, b = x, '' end
  local fs = {}
  for item in string.gmatch(a, '[^,]+') do fs[#fs + 1] = item end
  return fs, b
end
local function fpScheme(x)
  return string.match(x, '^([^:]*):') or ''
end
local function fpFind(fs, scheme)
  for _, y in ipairs(fs) do
    if fpScheme(y) == scheme then return y end
  end
  return nil
end
local function fpConflict(stored, given)
  if not stored or stored == '' or given == '' then return false end
  local sf, sg = fpParts(stored)
  local gf, gg = fpParts(given)
  if sg ~= '' and gg ~= '' and sg ~= gg then return true end
  for _, x in ipairs(gf) do
    local y = fpFind(sf, fpScheme(x))
    if y and y ~= x then return true end
  end
  return false
end
local function fpVouches(stored, given)
  if not stored or stored == '' or given == '' then return false end
  local sf = fpParts(stored)
  local gf = fpParts(given)
  for _, x in ipairs(gf) do
    local sc = fpScheme(x)
    if sc ~= '' and string.sub(sc, 1, 1) ~= 'u' and fpFind(sf, sc) == x then return true end
  end
  return false
end
local function fpMerge(stored, given)
  if given == '' then return stored or '' end
  if not stored or stored == '' then return given end
  local sf, sg = fpParts(stored)
  local gf, gg = fpParts(given)
  for _, x in ipairs(gf) do
    if not fpFind(sf, fpScheme(x)) then sf[#sf + 1] = x end
  end
  if sg == '' then sg = gg end
  return table.concat(sf, ',') .. '|' .. sg
end
`
