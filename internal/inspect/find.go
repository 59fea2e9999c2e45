package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ttcpay/payflow/internal/intent"
	"github.com/ttcpay/payflow/internal/streams"
)

// Found is one published result whose bookingId or CyberSource id matched
// a Find.
type Found struct {
	IntentID      string `json:"intentId"`
	MerchantID    string `json:"merchantId"`
	BookingID     string `json:"bookingId,omitempty"`
	CyberSourceID string `json:"cybersourceId,omitempty"`
	Status        string `json:"status"`
	Seq           uint64 `json:"seq"`
}

// FindReport is what Find read.
type FindReport struct {
	Matches []Found `json:"matches"`
	// Read is how many results were read; CutShort says the results
	// stream holds older results that were not read.
	Read     int  `json:"read"`
	CutShort bool `json:"cutShort"`
}

// Find looks for a bookingId or CyberSource id among the newest results
// (at most Options.ResultsScanLimit of them, every merchant). Nothing
// indexes those ids, so this is a bounded scan of the results stream:
// an intent whose results are older than the bound is found only by its
// intentId.
func (in *Inspector) Find(ctx context.Context, key string) (FindReport, error) {
	var rep FindReport
	if key == "" {
		return rep, nil
	}
	s, err := in.js.Stream(ctx, streams.StreamResults)
	if err != nil {
		return rep, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return rep, err
	}
	st := info.State
	if st.Msgs == 0 {
		return rep, nil
	}
	start := st.FirstSeq
	if limit := uint64(in.opt.ResultsScanLimit); st.LastSeq-st.FirstSeq+1 > limit {
		start, rep.CutShort = st.LastSeq-limit+1, true
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start})
	if err != nil {
		return rep, err
	}
	for rep.Read < in.opt.ResultsScanLimit {
		batch, err := c.FetchNoWait(512)
		if err != nil {
			return rep, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var r intent.Result
			if json.Unmarshal(m.Data(), &r) != nil || (r.BookingID != key && r.CyberSourceID != key) {
				continue
			}
			f := Found{IntentID: r.IntentID, MerchantID: r.MerchantID, BookingID: r.BookingID, CyberSourceID: r.CyberSourceID, Status: r.Status}
			if md, _ := m.Metadata(); md != nil {
				f.Seq = md.Sequence.Stream
			}
			rep.Matches = append(rep.Matches, f)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return rep, fmt.Errorf("read results: %w", err)
		}
		rep.Read += n
		if n == 0 {
			break
		}
	}
	return rep, nil
}
