// The report: every figure for each server with its spread over the repetitions, the ratios, and the targets.
import type { Metric, Sample, Variant } from "./scenarios.js"
import { type Build, formLabel, type ServerKind, type SidecarForm } from "./servers.js"
import { type Spread, spread } from "./stats.js"

export interface VariantResult {
  readonly variant: Variant
  readonly samples: Record<ServerKind, Array<Sample>>
  /** The sidecar started in its other form too (startup: as deployed and through tsx), in the same alternation. */
  readonly alt?: { readonly form: SidecarForm; readonly samples: Array<Sample> }
  /** The sidecar built before (`--before`), in the same alternation. */
  readonly before?: { readonly samples: Array<Sample> }
  readonly failures: Array<string>
}

export const figure = (result: VariantResult, kind: ServerKind, key: string): Spread =>
  spread(result.samples[kind].map((s) => s[key] ?? Number.NaN))

const altFigure = (result: VariantResult, key: string): Spread =>
  spread((result.alt?.samples ?? []).map((s) => s[key] ?? Number.NaN))

const fmt = (value: number, digits: number) =>
  Number.isNaN(value)
    ? "n/a"
    : value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

const cell = (s: Spread, metric: Metric) =>
  s.n === 0
    ? "n/a"
    : s.n === 1
    ? fmt(s.median, metric.digits)
    : `${fmt(s.median, metric.digits)} (${fmt(s.min, metric.digits)}–${fmt(s.max, metric.digits)})`

const ratio = (b: Spread, s: Spread) => (b.median === 0 ? Number.NaN : s.median / b.median)

const ratioCell = (b: Spread, s: Spread, metric: Metric) =>
  metric.better === "none" || b.n === 0 || s.n === 0 || (b.median === 0 && s.median === 0)
    ? ""
    : b.median === 0
    ? "∞"
    : `${ratio(b, s).toFixed(2)}x`

/** Whether the floor took part in this variant (it runs only where `variant.floor` asks for it). */
const withFloor = (r: VariantResult) => r.variant.floor === true

/**
 * All figures: median (min–max) over the repetitions for each server, sidecar ÷ baseline, and where the floor ran,
 * floor ÷ baseline and sidecar ÷ floor (empty where it did not). Where the sidecar also ran in its other form, each
 * figure has a second row for it (its ratios against the same baseline and floor runs).
 */
export const resultsTable = (
  results: ReadonlyArray<VariantResult>,
  form: SidecarForm = "compiled",
  build: Build = "bundle"
): string => {
  const lines = [
    "| scenario | figure | baseline | sidecar | floor | sidecar ÷ baseline | floor ÷ baseline | sidecar ÷ floor |",
    "|---|---|---:|---:|---:|---:|---:|---:|"
  ]
  for (const r of results) {
    const n = Math.max(r.samples.baseline.length, r.samples.sidecar.length, r.samples.floor.length)
    const floor = withFloor(r)
    r.variant.metrics.forEach((metric, i) => {
      const b = figure(r, "baseline", metric.key)
      const s = figure(r, "sidecar", metric.key)
      const f = figure(r, "floor", metric.key)
      const unit = metric.unit === "" ? "" : ` (${metric.unit})`
      const label = r.alt === undefined ? metric.label : `${metric.label}, sidecar ${formLabel(form, build)}`
      lines.push(
        `| ${i === 0 ? `**${r.variant.name}** ×${n}` : ""} | ${label}${unit} | ${cell(b, metric)} | ${
          cell(s, metric)
        } | ${floor ? cell(f, metric) : ""} | ${ratioCell(b, s, metric)} | ${floor ? ratioCell(b, f, metric) : ""} | ${
          floor ? ratioCell(f, s, metric) : ""
        } |`
      )
      if (r.alt !== undefined) {
        const a = altFigure(r, metric.key)
        lines.push(
          `| | ${metric.label}, sidecar ${formLabel(r.alt.form, build)}${unit} | ″ | ${cell(a, metric)} | ${
            floor ? "″" : ""
          } | ${ratioCell(b, a, metric)} | | ${floor ? ratioCell(f, a, metric) : ""} |`
        )
      }
    })
    for (const f of r.failures) {
      lines.push(`| | run failed | ${f.replaceAll("|", "/").replaceAll("\n", " ").slice(0, 200)} | | | | | |`)
    }
  }
  return lines.join("\n")
}

/** Where the build before ran: each figure before and after, and after ÷ before (CPU per request first to read). */
export const beforeAfterTable = (results: ReadonlyArray<VariantResult>): string => {
  const lines = ["| scenario | figure | before | after | after ÷ before |", "|---|---|---:|---:|---:|"]
  for (const r of results) {
    if (r.before === undefined) continue
    r.variant.metrics.forEach((metric, i) => {
      const before = spread(r.before!.samples.map((s) => s[metric.key] ?? Number.NaN))
      const after = figure(r, "sidecar", metric.key)
      const unit = metric.unit === "" ? "" : ` (${metric.unit})`
      lines.push(
        `| ${i === 0 ? `**${r.variant.name}**` : ""} | ${metric.label}${unit} | ${cell(before, metric)} | ${
          cell(after, metric)
        } | ${ratioCell(before, after, metric)} |`
      )
    })
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
  /** The floor's figure, floor ÷ baseline, and whether the floor itself would meet the target; absent where it did not run. */
  readonly floor?: { readonly value: string; readonly ratio: string; readonly met: boolean | undefined }
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

/**
 * A target on the sidecar's figure as a multiple of the yardstick's; `factor` as the report writes it ("1.0", "2").
 * The scenario is the variant's first word.
 */
const target = (
  variant: string,
  metric: string,
  label: string,
  bound: "≥" | "≤",
  factor: string,
  note = ""
): Target => ({
  scenario: variant.split(/[ ,]/)[0]!,
  variant,
  metric,
  text: `${label} ${bound} ${factor}x${note}`,
  check: bound === "≥" ? (b, s) => s >= Number(factor) * b : (b, s) => s <= Number(factor) * b
})

/** The targets of issue 24, as ratios to the yardstick in the same run; the last two are kept from issue 10. */
const targets: ReadonlyArray<Target> = [
  target("submit-new c=64", "rps", "submit-new c=64 req/s", "≥", "1.0"),
  target("submit-new c=1", "rps", "submit-new c=1 req/s", "≥", "0.6"),
  target("submit-dedupe c=64", "cpuUs", "submit-dedupe c=64 CPU per request", "≤", "2"),
  target("get-one c=16 (100k rows)", "cpuUs", "get-one CPU per request", "≤", "2"),
  target("livez c=16", "cpuUs", "livez CPU per request", "≤", "2"),
  target("list-100 c=16 (100k rows)", "p50", "list-100 p50", "≤", "1.2"),
  target("submit-new c=64", "peakRss", "peak RSS during submit-new c=64", "≤", "1.5"),
  target("startup, fresh database", "startup", "spawn to first livez 200", "≤", "1.5", " (fresh database)"),
  target("submit-new c=64", "p99", "submit-new c=64 p99", "≤", "2"),
  target("rehydrate 10k running rows", "rehydrate", "rehydrate 10k", "≤", "2")
]

/**
 * Each target, judged on the medians of the sidecar as measured (as deployed, bundled, unless --tsx); no result when
 * its scenario was not run or produced no numbers. Where the variant also ran the sidecar's other form, that form is
 * judged on a row of its own, marked as such (startup: what `npm run dev` costs, or `npm start` with --tsx).
 */
export const judgeTargets = (
  results: ReadonlyArray<VariantResult>,
  form: SidecarForm = "compiled",
  build: Build = "bundle"
): Array<TargetOutcome> =>
  targets.flatMap((t) => {
    const r = results.find((x) => x.variant.name === t.variant)
    const metric = r?.variant.metrics.find((m) => m.key === t.metric)
    if (r === undefined || metric === undefined) {
      return [{ target: t.text, baseline: "", sidecar: "", ratio: "", met: undefined, scenario: t.scenario }]
    }
    const b = figure(r, "baseline", t.metric)
    const checked = (s: Spread) =>
      b.n > 0 && s.n > 0 && !Number.isNaN(b.median) && !Number.isNaN(s.median) ? t.check(b.median, s.median) : undefined
    const judge = (target: string, s: Spread, scenario: string): TargetOutcome => ({
      target,
      baseline: `${fmt(b.median, metric.digits)} ${metric.unit}`,
      sidecar: `${fmt(s.median, metric.digits)} ${metric.unit}`,
      ratio: ratioCell(b, s, metric),
      met: checked(s),
      scenario
    })
    const f = figure(r, "floor", t.metric)
    const main: TargetOutcome = {
      ...judge(
        r.alt === undefined ? t.text : `${t.text}: sidecar ${formLabel(form, build)}`,
        figure(r, "sidecar", t.metric),
        t.scenario
      ),
      // The same check applied to the floor: a target the floor misses cannot be met on this stack by any code.
      ...(withFloor(r) && f.n > 0
        ? {
          floor: {
            value: `${fmt(f.median, metric.digits)} ${metric.unit}`,
            ratio: ratioCell(b, f, metric),
            met: checked(f)
          }
        }
        : {})
    }
    // The other form's row is for information: it is never profiled (the scenario's profile is of the main form).
    return r.alt === undefined
      ? [main]
      : [
        main,
        judge(`${t.text}: sidecar ${formLabel(r.alt.form, build)}`, altFigure(r, t.metric), `${t.scenario}/other form`)
      ]
  })

const verdict = (met: boolean | undefined) => (met === undefined ? "not run" : met ? "**met**" : "**MISSED**")

/**
 * The targets, judged on the sidecar; where the floor ran, the same check applied to the floor, i.e. whether even a
 * no-op server on the same HTTP stack would meet it.
 */
export const targetsTable = (outcomes: ReadonlyArray<TargetOutcome>): string =>
  [
    "| target (sidecar vs baseline, medians) | baseline | sidecar | ratio | | floor | floor ÷ baseline | the floor |",
    "|---|---:|---:|---:|---|---:|---:|---|",
    ...outcomes.map((o) => {
      const floor = o.floor === undefined
        ? ["", "", ""]
        : [
          o.floor.value,
          o.floor.ratio,
          o.floor.met === undefined ? "n/a" : o.floor.met ? "would meet it" : "**misses it**"
        ]
      return `| ${[o.target, o.baseline, o.sidecar, o.ratio, verdict(o.met), ...floor].join(" | ")} |`
    })
  ].join("\n")
