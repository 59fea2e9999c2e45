package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ttcpay/payflow/internal/deadletter"
	"github.com/ttcpay/payflow/internal/inspect"
	"github.com/ttcpay/payflow/internal/redact"
)

// page is what every template gets.
type page struct {
	Title        string
	Nav          string
	Operator     string
	CSRF         string
	AllowActions bool
	// Refresh, in seconds, reloads the page (the overview).
	Refresh int
	Error   string
	Now     time.Time
	Data    any
}

func parseTemplates() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"rfc3339": func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format(time.RFC3339)
		},
		"ago": func(now, t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			d := now.Sub(t).Round(time.Second)
			if d < 0 {
				return "in " + (-d).String()
			}
			return d.String() + " ago"
		},
	}
	out := map[string]*template.Template{}
	for _, name := range []string{"login", "error", "overview", "intent", "deadletters", "confirm", "done"} {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes a page. The data it shows is card-free already: the
// inspect structs are built from statuses, ids and amounts, reasons pass
// through redact.CardNumbers and payloads through deadletter.MaskedPayload
// (view).
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	if u, ok := s.identify(r); ok {
		p.Operator = u.operator
		if p.CSRF == "" {
			p.CSRF = u.csrf
		}
	}
	p.AllowActions = s.cfg.AllowActions
	p.Now = s.cfg.Now()
	p.Nav = name
	var b bytes.Buffer
	if err := s.tmpl[name].ExecuteTemplate(&b, "layout", p); err != nil {
		s.log.Error().Err(err).Str("page", name).Msg("console: render")
		http.Error(w, "render error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

// overview is the overview page's data.
type overview struct {
	Report      inspect.StatusReport
	DeadLetters int
}

func (s *Server) handleOverview(w http.ResponseWriter, r *http.Request, u who) {
	rep, err := s.read.Status(r.Context())
	p := page{Title: "Overview", CSRF: u.csrf, Refresh: int(s.cfg.Refresh.Seconds())}
	if err != nil {
		p.Error = "status: " + err.Error()
	}
	ov := overview{Report: rep}
	for _, d := range rep.DeadLetters {
		ov.DeadLetters += d.Count
	}
	p.Data = ov
	s.render(w, r, http.StatusOK, "overview", p)
}

// intentPage is the intent page's data.
type intentPage struct {
	Query string
	Story *inspect.IntentStory
	// FoundBy says how the intent was found from a bookingId or
	// CyberSource id; Matches lists several intents found that way.
	FoundBy string
	Matches []inspect.Found
	Find    *inspect.FindReport
}

func (s *Server) handleIntent(w http.ResponseWriter, r *http.Request, u who) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	p := page{Title: "Intent", CSRF: u.csrf}
	d := intentPage{Query: q}
	p.Data = &d
	if q == "" {
		s.render(w, r, http.StatusOK, "intent", p)
		return
	}
	ctx := r.Context()
	st, err := s.read.Intent(ctx, q)
	if err == nil && found(st) {
		d.Story = &st
		s.render(w, r, http.StatusOK, "intent", p)
		return
	}
	if err != nil && !errors.Is(err, inspect.ErrNoRecords) {
		p.Error = "intent: " + err.Error()
	}
	fr, ferr := s.read.Find(ctx, q)
	if ferr != nil {
		p.Error = strings.TrimPrefix(p.Error+"; search results: "+ferr.Error(), "; ")
	}
	d.Find = &fr
	ids := map[string]bool{}
	for _, m := range fr.Matches {
		ids[m.IntentID] = true
	}
	d.Matches = fr.Matches
	if len(ids) == 1 {
		id := fr.Matches[0].IntentID
		if st, err := s.read.Intent(ctx, id); err == nil || errors.Is(err, inspect.ErrNoRecords) {
			d.Story = &st
			m := fr.Matches[0]
			d.FoundBy = "bookingId"
			if m.CyberSourceID == q {
				d.FoundBy = "CyberSource id"
			}
		}
	}
	s.render(w, r, http.StatusOK, "intent", p)
}

// found says whether anything is known of the intent.
func found(st inspect.IntentStory) bool {
	return st.Known || len(st.Results) > 0 || len(st.DeadLetters) > 0 || (st.Callback != nil && st.Callback.Waiting)
}

// letterView is one dead letter as the pages show it.
type letterView struct {
	Seq                            uint64
	Time                           time.Time
	Kind, Class, Merchant, Intent  string
	Deliveries                     uint64
	Reason, Payload, Subject, Stop string
}

func view(l deadletter.Letter) letterView {
	v := letterView{Seq: l.Seq, Time: l.Time, Kind: string(l.Kind), Class: string(l.Class), Merchant: l.MerchantID, Intent: l.IntentID,
		Deliveries: l.Deliveries, Reason: redact.CardNumbers(l.Reason), Payload: deadletter.MaskedPayload(l.Data), Subject: l.OriginalSubject}
	if err := deadletter.CheckReplay(l); err != nil {
		v.Stop = err.Error()
	}
	return v
}

// MaxListed caps the dead letters one page lists.
const MaxListed = 500

type lettersPage struct {
	Filter   deadletter.Filter
	Letters  []letterView
	Total    int
	Kinds    []string
	Classes  []deadletter.Class
	CutShort bool
}

func (s *Server) handleLetters(w http.ResponseWriter, r *http.Request, u who) {
	q := r.URL.Query()
	f := deadletter.Filter{Kind: q.Get("kind"), Class: q.Get("class"), Merchant: strings.TrimSpace(q.Get("merchant")), IntentID: strings.TrimSpace(q.Get("intent"))}
	p := page{Title: "Dead letters", CSRF: u.csrf}
	d := lettersPage{Filter: f, Kinds: []string{string(deadletter.KindIntents), string(deadletter.KindCallbacks)}, Classes: deadletter.Classes}
	p.Data = &d
	code := http.StatusOK
	if err := f.Validate(); err != nil {
		p.Error, code = err.Error(), http.StatusBadRequest
	} else if ls, err := s.letters.List(r.Context(), f); err != nil {
		p.Error = "dead letters: " + err.Error()
	} else {
		d.Total = len(ls)
		if len(ls) > MaxListed {
			// Newest first is what an operator looks for; List is oldest first.
			ls, d.CutShort = ls[len(ls)-MaxListed:], true
		}
		for _, l := range slices.Backward(ls) {
			d.Letters = append(d.Letters, view(l))
		}
	}
	s.render(w, r, code, "deadletters", p)
}

// selection reads the action and the selected sequences of a form.
func selection(r *http.Request) (string, []uint64, error) {
	action := r.PostFormValue("action")
	if action != "replay" && action != "purge" {
		return "", nil, fmt.Errorf("unknown action %q", action)
	}
	var seqs []uint64
	for _, v := range r.PostForm["seq"] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return "", nil, fmt.Errorf("bad sequence %q", v)
		}
		if !slices.Contains(seqs, n) {
			seqs = append(seqs, n)
		}
	}
	if len(seqs) == 0 {
		return "", nil, errors.New("select at least one dead letter")
	}
	if len(seqs) > MaxListed {
		return "", nil, fmt.Errorf("select at most %d dead letters", MaxListed)
	}
	return action, seqs, nil
}

type confirmPage struct {
	Action  string
	Letters []letterView
	// Replayable counts the letters a replay would republish.
	Replayable int
}

func (s *Server) handleConfirm(w http.ResponseWriter, r *http.Request, u who) {
	action, seqs, err := selection(r)
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, err.Error())
		return
	}
	ls, err := s.letters.List(r.Context(), deadletter.Filter{Seqs: seqs})
	if errors.Is(err, deadletter.ErrNoLetter) {
		s.refuse(w, r, http.StatusConflict, err.Error()+": replayed or purged since it was listed; reload the dead letters")
		return
	}
	if err != nil {
		s.refuse(w, r, http.StatusBadGateway, "dead letters: "+err.Error())
		return
	}
	d := confirmPage{Action: action}
	for _, l := range ls {
		v := view(l)
		if v.Stop == "" {
			d.Replayable++
		}
		d.Letters = append(d.Letters, v)
	}
	s.render(w, r, http.StatusOK, "confirm", page{Title: "Confirm " + action, CSRF: u.csrf, Data: d})
}

type donePage struct {
	Action  string
	Done    []letterView
	Failed  []letterView
	Summary deadletter.Summary
	Error   string
}

func (s *Server) handleDo(w http.ResponseWriter, r *http.Request, u who) {
	action, seqs, err := selection(r)
	if err != nil {
		s.refuse(w, r, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	f := deadletter.Filter{Seqs: seqs}
	d := donePage{Action: action}
	log := s.log.With().Str("operator", u.operator).Str("action", "dlq "+action).Str("remote", r.RemoteAddr).Logger()
	switch action {
	case "replay":
		sum, err := s.letters.Replay(ctx, f)
		d.Summary = sum
		if err != nil {
			d.Error = err.Error()
		}
		for _, l := range sum.Letters {
			v := view(l)
			ev := log.Info()
			if v.Stop != "" {
				ev = log.Warn().Str("refused", v.Stop)
				d.Failed = append(d.Failed, v)
			} else {
				d.Done = append(d.Done, v)
			}
			ev.Uint64("seq", l.Seq).Str("intentId", l.IntentID).Str("merchantId", l.MerchantID).Str("class", string(l.Class)).
				Str("kind", string(l.Kind)).Msg("console: dead letter replayed")
		}
		log.Info().Ints("selected", intsOf(seqs)).Int("replayed", sum.Replayed).Int("failed", sum.Failed).Msg("console: replay done")
	case "purge":
		ls, err := s.letters.Purge(ctx, f)
		if err != nil {
			d.Error = err.Error()
		}
		for _, l := range ls {
			d.Done = append(d.Done, view(l))
			log.Info().Uint64("seq", l.Seq).Str("intentId", l.IntentID).Str("merchantId", l.MerchantID).Str("class", string(l.Class)).
				Str("kind", string(l.Kind)).Msg("console: dead letter purged")
		}
		log.Info().Ints("selected", intsOf(seqs)).Int("purged", len(ls)).Msg("console: purge done")
	}
	if d.Error != "" {
		log.Error().Str("error", d.Error).Msg("console: action failed")
	}
	s.render(w, r, http.StatusOK, "done", page{Title: action + " done", CSRF: u.csrf, Data: d})
}

func intsOf(seqs []uint64) []int {
	out := make([]int, len(seqs))
	for i, n := range seqs {
		out[i] = int(n)
	}
	return out
}
