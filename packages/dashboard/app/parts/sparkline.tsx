// An SVG sparkline of one series, with its summary as the accessible name (a chart is not read out).
export interface SparklineProps {
  values: readonly (number | null)[];
  /** A second series drawn over the first, e.g. failures over calls. */
  overlay?: readonly (number | null)[];
  label: string;
  width?: number;
  height?: number;
}

function path(values: readonly (number | null)[], max: number, width: number, height: number): string {
  const step = values.length > 1 ? width / (values.length - 1) : width;
  let d = '';
  let run = 0;
  values.forEach((v, i) => {
    if (v === null) {
      // A lone point between gaps would draw nothing: a short tick shows it.
      if (run === 1) d += 'h2';
      run = 0;
      return;
    }
    const x = (i * step).toFixed(1);
    const y = (height - 1 - (max === 0 ? 0 : (v / max) * (height - 2))).toFixed(1);
    d += `${run === 0 ? 'M' : 'L'}${x} ${y}`;
    run++;
  });
  if (run === 1) d += 'h-2';
  return d;
}

export function Sparkline({ values, overlay, label, width = 120, height = 28 }: SparklineProps) {
  const all = [...values, ...(overlay ?? [])].filter((v): v is number => v !== null);
  const max = all.length === 0 ? 0 : Math.max(...all);
  return (
    <svg
      class="sparkline"
      viewBox={`0 0 ${width} ${height}`}
      width={width}
      height={height}
      role="img"
      aria-label={label}
    >
      <title>{label}</title>
      <path class="sparkline-main" d={path(values, max, width, height)} />
      {overlay === undefined ? null : (
        <path class="sparkline-overlay" d={path(overlay, max, width, height)} />
      )}
    </svg>
  );
}

/** Sum of a series, for the summaries. */
export function total(values: readonly (number | null)[] | undefined): number {
  return (values ?? []).reduce<number>((sum, v) => sum + (v ?? 0), 0);
}
