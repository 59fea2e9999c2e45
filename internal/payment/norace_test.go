//go:build !race

package payment_test

const raceEnabled = false
