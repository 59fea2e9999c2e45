package intent_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/ttcpay/payflow/internal/intent"
)

func schema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := os.ReadFile("../../docs/intent.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("intent.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("intent.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// schemaAccepts parses one JSON document (no trailing data) and validates it.
func schemaAccepts(s *jsonschema.Schema, data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return false
	}
	return s.Validate(v) == nil
}

// The checks the schema cannot express (its description lists them).
var semanticOnly = map[string]bool{"BadLuhn": true, "UnsupportedBrand": true, "ExpiredCard": true}

// TestSchemaAgreesWithValidation runs the valid and invalid corpora through
// the JSON Schema and the Go validation.
func TestSchemaAgreesWithValidation(t *testing.T) {
	s := schema(t)
	valid := map[string][]byte{
		"Seed":          seed(t),
		"NoTokenize":    edit(t, func(m map[string]any) { delete(m, "tokenize") }),
		"AuthorizeOnly": edit(t, func(m map[string]any) { m["capture"] = false }),
		"NoPhone":       edit(t, func(m map[string]any) { delete(billTo(m), "phoneNumber") }),
		"NoCVV":         edit(t, func(m map[string]any) { delete(card(m), "securityCode") }),
		"Amex":          edit(t, func(m map[string]any) { card(m)["number"] = "378282246310005"; card(m)["securityCode"] = "1234" }),
		"SmallAmount":   edit(t, func(m map[string]any) { m["amount"] = "0.01" }),
		"Unicode":       edit(t, func(m map[string]any) { billTo(m)["firstName"] = "Zoë"; billTo(m)["locality"] = "Zürich" }),
	}
	for name, data := range valid {
		_, goErr := intent.Decode(data, now)
		if goErr != nil || !schemaAccepts(s, data) {
			t.Errorf("valid %s: Go %v, schema accepts %v", name, goErr, schemaAccepts(s, data))
		}
	}
	for _, tc := range invalidCases(t) {
		_, goErr := intent.Decode(tc.data, now)
		if goErr == nil {
			t.Fatalf("%s: Go accepted", tc.name)
		}
		accepted := schemaAccepts(s, tc.data)
		if semanticOnly[tc.name] {
			if !accepted {
				t.Errorf("%s: the schema refuses it, so it is not semantic-only any more: update the list", tc.name)
			}
			continue
		}
		if accepted {
			t.Errorf("invalid %s: the schema accepts what Go refuses", tc.name)
		}
	}
}

// TestSchemaCurrencies: every currency and its minor unit, both ways.
func TestSchemaCurrencies(t *testing.T) {
	s := schema(t)
	b, _ := os.ReadFile("../../docs/intent.schema.json")
	var doc struct {
		Properties struct {
			Currency struct {
				Enum []string `json:"enum"`
			} `json:"currency"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(b, &doc)
	if len(doc.Properties.Currency.Enum) < 150 {
		t.Fatalf("schema lists %d currencies", len(doc.Properties.Currency.Enum))
	}
	for _, cur := range doc.Properties.Currency.Enum {
		d, ok := intent.MinorUnits(cur)
		if !ok {
			t.Fatalf("schema currency %s unknown to Go", cur)
		}
		amount := "12"
		if d > 0 {
			amount += "." + strings.Repeat("5", d)
		}
		for _, tc := range []struct {
			amount string
			ok     bool
		}{{amount, true}, {amount + map[bool]string{true: ".5", false: "5"}[d == 0], false}} {
			data := edit(t, func(m map[string]any) { m["currency"] = cur; m["amount"] = tc.amount })
			_, goErr := intent.Decode(data, now)
			if (goErr == nil) != tc.ok || schemaAccepts(s, data) != tc.ok {
				t.Errorf("%s %s: Go %v, schema %v, want ok=%v", cur, tc.amount, goErr, schemaAccepts(s, data), tc.ok)
			}
		}
	}
}
