package sandbox

import (
	"strconv"
	"strings"
)

// The sandbox keeps amounts in thousandths of the currency unit, which holds
// every ISO 4217 minor unit (0, 2 or 3 decimals).
const milliPerUnit = 1000

// parseMilli reads a positive decimal string such as "102.21" with at most
// three decimals.
func parseMilli(s string) (int64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && (frac == "" || len(frac) > 3)) {
		return 0, false
	}
	for _, r := range whole + frac {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > 1e12 {
		return 0, false
	}
	for len(frac) < 3 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	v := w*milliPerUnit + f
	return v, v > 0
}

// formatMilli writes v with the given number of decimals (0..3).
func formatMilli(v int64, decimals int) string {
	whole := v / milliPerUnit
	frac := v % milliPerUnit
	s := strconv.FormatInt(whole, 10)
	if decimals <= 0 {
		return s
	}
	fs := strconv.FormatInt(frac+milliPerUnit, 10)[1:] // three digits
	return s + "." + fs[:decimals]
}

// decimalsOf is how many decimals a request wrote, so that derived amounts
// are written the same way.
func decimalsOf(s string) int {
	_, frac, ok := strings.Cut(s, ".")
	if !ok {
		return 0
	}
	return len(frac)
}
