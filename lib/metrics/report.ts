/** The object metrics return when an extractor produced the number: it always names that extractor. */
export interface MetricReport {
  /** The metric ("clipScore", "fd", "kid", "lpips-diversity", "categoryAgreement", ...). */
  metric: string;
  /** The extractor (or LPIPS net) that produced the features: "judge", "clip", "judge-LPIPS", "clip:/path", ... */
  extractor: string;
  /** The headline number (the mean where there are several values). */
  value: number;
  /** Items measured (images, pairs or subsets). */
  n: number;
  /** Per-item values, where there are several. */
  values?: number[];
  /** Standard deviation (KID: over subsets; otherwise over `values`, population). */
  std?: number;
}

/** A MetricReport from per-item values (value = mean, std = population std). */
export function report(
  metric: string,
  extractor: string,
  values: number[],
  extra: Partial<MetricReport> = {},
): MetricReport {
  const n = values.length;
  const mean = n ? values.reduce((a, b) => a + b, 0) / n : NaN;
  const std = n ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / n) : NaN;
  return { metric, extractor, value: mean, n, values, std, ...extra };
}
