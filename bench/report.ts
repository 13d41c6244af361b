// The report: every figure for both servers with its spread over the repetitions, the ratio, and the targets.
import type { Metric, Sample, Variant } from "./scenarios.js"
import { formLabel, type ServerKind, type SidecarForm } from "./servers.js"
import { type Spread, spread } from "./stats.js"

export interface VariantResult {
  readonly variant: Variant
  readonly samples: Record<ServerKind, Array<Sample>>
  /** The sidecar started in its other form too (startup: compiled and tsx), in the same alternation. */
  readonly alt?: { readonly form: SidecarForm; readonly samples: Array<Sample> }
  readonly failures: Array<string>
}

export const figure = (result: VariantResult, kind: ServerKind, key: string): Spread =>
  spread(result.samples[kind].map((s) => s[key] ?? Number.NaN))

const altFigure = (result: VariantResult, key: string): Spread =>
  spread((result.alt?.samples ?? []).map((s) => s[key] ?? Number.NaN))

const fmt = (value: number, digits: number) =>
  Number.isNaN(value) ? "n/a" : value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

const cell = (s: Spread, metric: Metric) =>
  s.n === 0 ? "n/a" : s.n === 1 ? fmt(s.median, metric.digits) : `${fmt(s.median, metric.digits)} (${fmt(s.min, metric.digits)}–${fmt(s.max, metric.digits)})`

const ratio = (b: Spread, s: Spread) => (b.median === 0 ? Number.NaN : s.median / b.median)

const ratioCell = (b: Spread, s: Spread, metric: Metric) =>
  metric.better === "none" || b.n === 0 || s.n === 0 || (b.median === 0 && s.median === 0)
    ? ""
    : b.median === 0
    ? "∞"
    : `${ratio(b, s).toFixed(2)}x`

/**
 * All figures: median (min–max) over the repetitions for each server, and sidecar ÷ baseline. Where the sidecar
 * also ran in its other form, each figure has a second row for it (its ratio against the same baseline runs).
 */
export const resultsTable = (results: ReadonlyArray<VariantResult>, form: SidecarForm = "compiled"): string => {
  const lines = [
    "| scenario | figure | baseline | sidecar | sidecar ÷ baseline |",
    "|---|---|---:|---:|---:|"
  ]
  for (const r of results) {
    const n = Math.max(r.samples.baseline.length, r.samples.sidecar.length)
    r.variant.metrics.forEach((metric, i) => {
      const b = figure(r, "baseline", metric.key)
      const s = figure(r, "sidecar", metric.key)
      const unit = metric.unit === "" ? "" : ` (${metric.unit})`
      const label = r.alt === undefined ? metric.label : `${metric.label}, sidecar ${formLabel(form)}`
      lines.push(
        `| ${i === 0 ? `**${r.variant.name}** ×${n}` : ""} | ${label}${unit} | ${cell(b, metric)} | ${
          cell(s, metric)
        } | ${ratioCell(b, s, metric)} |`
      )
      if (r.alt !== undefined) {
        const a = altFigure(r, metric.key)
        lines.push(
          `| | ${metric.label}, sidecar ${formLabel(r.alt.form)}${unit} | ″ | ${cell(a, metric)} | ${ratioCell(b, a, metric)} |`
        )
      }
    })
    for (const f of r.failures) lines.push(`| | run failed | ${f.replaceAll("|", "/").replaceAll("\n", " ").slice(0, 200)} | | |`)
  }
  return lines.join("\n")
}

export interface TargetOutcome {
  readonly target: string
  readonly baseline: string
  readonly sidecar: string
  readonly ratio: string
  /** undefined when the scenario did not run. */
  readonly met: boolean | undefined
  /** The scenario to profile when the target is missed; "<scenario>/other form" for the form not profiled. */
  readonly scenario: string
}

interface Target {
  readonly scenario: string
  readonly variant: string
  readonly metric: string
  readonly text: string
  readonly check: (b: number, s: number) => boolean
}

const targets: ReadonlyArray<Target> = [
  { scenario: "submit-new", variant: "submit-new c=64", metric: "rps", text: "submit-new c=64 req/s ≥ 0.6x", check: (b, s) => s >= 0.6 * b },
  { scenario: "submit-new", variant: "submit-new c=64", metric: "p99", text: "submit-new c=64 p99 ≤ 2x", check: (b, s) => s <= 2 * b },
  {
    scenario: "submit-dedupe",
    variant: "submit-dedupe c=64",
    metric: "rps",
    text: "submit-dedupe c=64 req/s ≥ 0.7x",
    check: (b, s) => s >= 0.7 * b
  },
  { scenario: "get-one", variant: "get-one c=16 (100k rows)", metric: "p50", text: "get-one p50 ≤ 2x", check: (b, s) => s <= 2 * b },
  { scenario: "list-100", variant: "list-100 c=16 (100k rows)", metric: "p50", text: "list-100 p50 ≤ 2x", check: (b, s) => s <= 2 * b },
  {
    scenario: "startup",
    variant: "startup, fresh database",
    metric: "startup",
    text: "startup to livez ≤ 3x and < 500 ms (fresh database)",
    check: (b, s) => s <= 3 * b && s < 500
  },
  {
    scenario: "rehydrate",
    variant: "rehydrate 10k running rows",
    metric: "rehydrate",
    text: "rehydrate 10k ≤ 2x",
    check: (b, s) => s <= 2 * b
  },
  {
    scenario: "submit-new",
    variant: "submit-new c=64",
    metric: "peakRss",
    text: "peak RSS during submit-new c=64 ≤ 2x",
    check: (b, s) => s <= 2 * b
  }
]

/**
 * Each target, judged on the medians of the sidecar as measured (compiled unless --tsx); no result when its
 * scenario was not run or produced no numbers. Where the variant also ran the sidecar's other form, that form is
 * judged on a row of its own, marked as such (startup: what `npm start` costs).
 */
export const judgeTargets = (results: ReadonlyArray<VariantResult>, form: SidecarForm = "compiled"): Array<TargetOutcome> =>
  targets.flatMap((t) => {
    const r = results.find((x) => x.variant.name === t.variant)
    const metric = r?.variant.metrics.find((m) => m.key === t.metric)
    if (r === undefined || metric === undefined) {
      return [{ target: t.text, baseline: "", sidecar: "", ratio: "", met: undefined, scenario: t.scenario }]
    }
    const b = figure(r, "baseline", t.metric)
    const judge = (target: string, s: Spread, scenario: string): TargetOutcome => {
      const ok = b.n > 0 && s.n > 0 && !Number.isNaN(b.median) && !Number.isNaN(s.median)
      return {
        target,
        baseline: `${fmt(b.median, metric.digits)} ${metric.unit}`,
        sidecar: `${fmt(s.median, metric.digits)} ${metric.unit}`,
        ratio: ratioCell(b, s, metric),
        met: ok ? t.check(b.median, s.median) : undefined,
        scenario
      }
    }
    const main = judge(
      r.alt === undefined ? t.text : `${t.text}: sidecar ${formLabel(form)}`,
      figure(r, "sidecar", t.metric),
      t.scenario
    )
    // The other form's row is for information: it is never profiled (the scenario's profile is of the main form).
    return r.alt === undefined
      ? [main]
      : [main, judge(`${t.text}: sidecar ${formLabel(r.alt.form)}`, altFigure(r, t.metric), `${t.scenario}/other form`)]
  })

export const targetsTable = (outcomes: ReadonlyArray<TargetOutcome>): string =>
  [
    "| target (sidecar vs baseline, medians) | baseline | sidecar | ratio | |",
    "|---|---:|---:|---:|---|",
    ...outcomes.map((o) =>
      `| ${o.target} | ${o.baseline} | ${o.sidecar} | ${o.ratio} | ${
        o.met === undefined ? "not run" : o.met ? "**met**" : "**MISSED**"
      } |`
    )
  ].join("\n")
