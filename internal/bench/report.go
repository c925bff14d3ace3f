package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Target is one of the product's goals for a figure.
type Target struct {
	Key   string
	Label string
	Goal  string
	Met   func(*Result) bool
}

// Targets are the goals of issues 7 and 20, checked by WriteTable. Peak RSS is a
// goal at 10M profiles; at smaller sizes it is shown against the same bound.
var Targets = []Target{
	{"cycle_over_query", "full cycle ÷ bare query", "≤ 1.25", func(r *Result) bool { return r.CycleOverQuery <= 1.25 }},
	{"nochange_over_query", "no-change cycle ÷ bare query", "≤ 1.10", func(r *Result) bool { return r.NochangeOverQuery > 0 && r.NochangeOverQuery <= 1.10 }},
	{"mutate_over_query", "mutation cycle ÷ bare query on its data", "≤ 1.10", func(r *Result) bool { return r.MutateOverQuery > 0 && r.MutateOverQuery <= 1.10 }},
	{"cycle_over_except", "cycle ÷ EXCEPT baseline (mutation hour)", "< 1", func(r *Result) bool { return r.CycleOverExcept > 0 && r.CycleOverExcept < 1 }},
	{"nochange_bytes_written_ratio", "no-change bytes written ÷ state", "< 1%", func(r *Result) bool { return r.NochangeBytesWrittenRatio < 0.01 }},
	{"diff_rows_per_s", "differ rows/s", "≥ 2M", func(r *Result) bool { return r.DiffRowsPerS >= 2e6 }},
	{"kafka_over_raw", "Kafka delivery ÷ raw franz-go", "≥ 0.8", func(r *Result) bool { return r.KafkaOverRaw >= 0.8 }},
	{"peak_rss_mb", "peak RSS of the cycle (MB)", "≤ 512", func(r *Result) bool { return r.PeakRSSMB <= 512 }},
}

// WriteTable writes r as a human-readable table.
func WriteTable(w io.Writer, r *Result) error {
	fmt.Fprintf(w, "%d profiles on %s\n", r.Profiles, r.Machine)
	fmt.Fprintf(w, "first cycle: %d result rows, %d members, %d events; state %.1f MB after delivery\n\n", r.Rows, r.Members, r.Events, r.StateMB)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("figure\tvalue\ttarget\n")
	p("query_s (floor)\t%.3f\t\n", r.QueryS)
	p("cycle_s (first cycle)\t%.3f\t\n", r.CycleS)
	p("cycle_over_query\t%.2f\t%s\n", r.CycleOverQuery, verdict(r, "cycle_over_query"))
	p("cycle_bytes_written (first cycle)\t%.1f MB (%.0f B/event)\t\n", float64(r.CycleBytesWritten)/1e6, float64(r.CycleBytesWritten)/float64(max(1, r.Events)))
	p("nochange_cycle_s\t%.3f\t\n", r.NochangeCycleS)
	p("nochange_over_query\t%.2f\t%s\n", r.NochangeOverQuery, verdict(r, "nochange_over_query"))
	p("nochange_bytes_written_ratio\t%.5f (%d B)\t%s\n", r.NochangeBytesWrittenRatio, r.NochangeBytesWritten, verdict(r, "nochange_bytes_written_ratio"))
	if r.MutatePercent > 0 {
		p("mutate_cycle_s (%g%% of rows)\t%.3f\t\n", r.MutatePercent, r.MutateCycleS)
		p("mutate_query_s (bare query, mutated data)\t%.3f\t\n", r.MutateQueryS)
		p("mutate_over_query\t%.2f\t%s\n", r.MutateOverQuery, verdict(r, "mutate_over_query"))
		p("mutate_bytes_written_ratio\t%.4f (%d B)\t\n", r.MutateBytesWrittenRatio, r.MutateBytesWritten)
		p("mutate rows changed / events\t%d / %d\t\n", r.MutateRowsChanged, r.MutateEvents)
	}
	if r.ExceptBaselineS > 0 {
		p("except_first_s\t%.3f\t\n", r.ExceptFirstS)
		p("except_baseline_s (mutation hour)\t%.3f\t\n", r.ExceptBaselineS)
		p("cycle_over_except\t%.2f\t%s\n", r.CycleOverExcept, verdict(r, "cycle_over_except"))
	}
	p("diff_rows_per_s (first / no-change / mutation)\t%.0f (%.0f / %.0f / %.0f)\t%s\n", r.DiffRowsPerS, r.DiffRowsPerSFirst, r.DiffRowsPerSNochange, r.DiffRowsPerSMutate, verdict(r, "diff_rows_per_s"))
	if r.KafkaEvents > 0 {
		p("kafka_events_per_s (%d events)\t%.0f\t\n", r.KafkaEvents, r.KafkaEventsPerS)
		p("kafka raw franz-go events/s\t%.0f\t\n", r.KafkaRawEventsPerS)
		p("kafka_over_raw\t%.2f\t%s\n", r.KafkaOverRaw, verdict(r, "kafka_over_raw"))
	}
	p("peak_rss_mb\t%.0f\t%s\n", r.PeakRSSMB, verdict(r, "peak_rss_mb"))
	p("go_heap_peak_mb\t%.0f\t\n", r.GoHeapPeakMB)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	p("audience\trows\tmembers\tquery_s\tcycle_s\tnochange_s\tmutate_s\texcept_s\t\n")
	for _, a := range r.PerAudience {
		p("%s\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", a.Name, a.Rows, a.Members, a.QueryS, a.CycleS, a.NochangeCycleS, a.MutateCycleS, a.ExceptS)
	}
	return tw.Flush()
}

func verdict(r *Result, key string) string {
	for _, t := range Targets {
		if t.Key == key {
			if t.Met(r) {
				return t.Goal + " met"
			}
			return t.Goal + " NOT met"
		}
	}
	return ""
}

// WriteScheduleTable writes r as a human-readable table, a column per
// round.
func WriteScheduleTable(w io.Writer, r *ScheduleResult) error {
	fmt.Fprintf(w, "%d generated audiences (%s) on %d profiles, at most %d cycles at once, on %s\n", r.Audiences, r.Schedule, r.Profiles, r.MaxConcurrent, r.Machine)
	fmt.Fprintf(w, "memory: %s\n\n", r.Memory)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(label string, cell func(RoundResult) string) {
		fmt.Fprint(tw, label)
		for _, rd := range r.Rounds {
			fmt.Fprint(tw, "\t", cell(rd))
		}
		fmt.Fprintln(tw)
	}
	s3 := func(s Spread) string { return fmt.Sprintf("%.3f / %.3f / %.3f", s.Median, s.P99, s.Max) }
	row("round", func(rd RoundResult) string { return rd.Name })
	row("cycles (failed)", func(rd RoundResult) string { return fmt.Sprintf("%d (%d)", rd.Cycles, rd.Failures) })
	row("wall_s", func(rd RoundResult) string { return fmt.Sprintf("%.1f", rd.WallS) })
	row("cycles_per_min", func(rd RoundResult) string { return fmt.Sprintf("%.1f", rd.CyclesPerMin) })
	row("cycle_s median / p99 / max", func(rd RoundResult) string { return s3(rd.CycleS) })
	row("start_delay_s median / p99 / max", func(rd RoundResult) string { return s3(rd.StartDelayS) })
	row("idle_slot_s (scheduler_overhead)", func(rd RoundResult) string {
		return fmt.Sprintf("%.3f (%.3f%%)", rd.IdleSlotS, 100*rd.SchedulerOverhead)
	})
	row("slot_utilization / cpu_utilization", func(rd RoundResult) string {
		return fmt.Sprintf("%.1f%% / %.1f%%", 100*rd.SlotUtilization, 100*rd.CPUUtilization)
	})
	row("met "+r.Schedule+" (missed)", func(rd RoundResult) string {
		return fmt.Sprintf("%d (%d), latest %.1f s after due", rd.MetSchedule, rd.MissedSchedule, rd.LatestFinishS)
	})
	row("rows / members / events", func(rd RoundResult) string { return fmt.Sprintf("%d / %d / %d", rd.Rows, rd.Members, rd.Events) })
	row("peak_rss_mb", func(rd RoundResult) string { return fmt.Sprintf("%.0f", rd.PeakRSSMB) })
	row("go_heap_peak_mb", func(rd RoundResult) string { return fmt.Sprintf("%.0f", rd.GoHeapPeakMB) })
	row("state_mb (sstables)", func(rd RoundResult) string {
		return fmt.Sprintf("%.1f (%.1f)", float64(rd.StateBytes)/(1<<20), float64(rd.StateTablesBytes)/(1<<20))
	})
	row("/metrics bytes", func(rd RoundResult) string { return fmt.Sprintf("%d", rd.Metrics.Bytes) })
	row("/metrics series (per audience)", func(rd RoundResult) string {
		return fmt.Sprintf("%d (%.1f)", rd.Metrics.Series, rd.Metrics.PerAudience)
	})
	return tw.Flush()
}
