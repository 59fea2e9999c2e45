package sandbox

// outcome is what the sandbox answers for a payment.
type outcome struct {
	status  string // AUTHORIZED, DECLINED, PARTIAL_AUTHORIZED, ...
	reason  string // errorInformation.reason
	message string
	// partial: only half of the amount is authorized.
	partial bool
	// http502 answers 502 SERVER_ERROR with this reason; charged says
	// whether the charge was recorded before that answer.
	http502 string
	charged bool
	// http400 answers 400 INVALID_REQUEST with this reason; nothing charged.
	http400 string
}

var approved = outcome{status: "AUTHORIZED"}

// DeclineCards are the test cards that decline, with the reason they
// decline for. Every other Luhn-valid card number is approved.
var DeclineCards = map[string]outcome{
	"4000000000000002":  {status: "DECLINED", reason: "PROCESSOR_DECLINED", message: "Decline - General decline of the card. No other information provided by the issuing bank."},
	"4000000000009995":  {status: "DECLINED", reason: "INSUFFICIENT_FUND", message: "Decline - Insufficient funds in the account."},
	"4000000000000069":  {status: "DECLINED", reason: "EXPIRED_CARD", message: "Decline - Expired card. You might also receive this if the expiration date you provided does not match the date the issuing bank has on file."},
	"4000000000000127":  {status: "DECLINED", reason: "CVN_NOT_MATCH", message: "Decline - The CVN did not match."},
	"4000000000009987":  {status: "DECLINED", reason: "STOLEN_LOST_CARD", message: "Decline - Stolen or lost card."},
	"42423482938483873": {status: "DECLINED", reason: "INVALID_ACCOUNT", message: "Decline - Invalid account number"},
	"4000000000000101":  {status: "AUTHORIZED_PENDING_REVIEW", reason: "AVS_FAILED", message: "Soft Decline - The authorization request was approved by the issuing bank but declined by CyberSource because it did not pass the Address Verification System (AVS) check."},
}

// Amount triggers, by the numeric value of totalAmount in any currency.
var amountTriggers = map[int64]outcome{
	2000 * milliPerUnit: {http502: "SYSTEM_ERROR"},                   // not charged
	2001 * milliPerUnit: {http502: "SERVER_TIMEOUT", charged: true},  // charged, then timeout
	2002 * milliPerUnit: {http502: "SERVICE_TIMEOUT", charged: true}, // charged, then timeout
	3000 * milliPerUnit: {status: "PARTIAL_AUTHORIZED", partial: true},
	3001 * milliPerUnit: {status: "AUTHORIZED_PENDING_REVIEW", reason: "AVS_FAILED", message: "Soft Decline - AVS check failed."},
	3002 * milliPerUnit: {status: "AUTHORIZED_RISK_DECLINED", reason: "DECISION_PROFILE_REJECT", message: "Decision Manager rejected the order."},
	3003 * milliPerUnit: {status: "DECLINED", reason: "INSUFFICIENT_FUND", message: "Decline - Insufficient funds in the account."},
	4000 * milliPerUnit: {http400: "INVALID_AMOUNT"}, // refused, not charged
}

func luhnValid(n string) bool {
	if len(n) < 12 || len(n) > 19 {
		return false
	}
	sum := 0
	double := false
	for i := len(n) - 1; i >= 0; i-- {
		c := n[i]
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// cardType returns CyberSource's three-digit card type code for a number.
func cardType(n string) string {
	p := func(k int) int {
		v := 0
		for i := 0; i < k && i < len(n); i++ {
			v = v*10 + int(n[i]-'0')
		}
		return v
	}
	switch {
	case n[0] == '4':
		return "001"
	case p(2) >= 51 && p(2) <= 55, p(4) >= 2221 && p(4) <= 2720:
		return "002"
	case p(2) == 34 || p(2) == 37:
		return "003"
	case p(4) == 6011, p(2) == 65, p(3) >= 644 && p(3) <= 649:
		return "004"
	case p(2) == 36 || p(2) == 38, p(3) >= 300 && p(3) <= 305:
		return "005"
	case p(2) == 35:
		return "007"
	case p(2) == 50, p(2) >= 56 && p(2) <= 69:
		return "042"
	}
	return "001"
}
