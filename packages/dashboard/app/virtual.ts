// The windowing arithmetic of the runs list: rows of a fixed height, so which rows a viewport
// shows is a division, with no measuring; only those rows (and a margin) are in the DOM.

/** Every row's height in px; matches `.vrow` in styles.css. */
export const ROW_HEIGHT = 36;
/** Rows drawn beyond the visible ones on each side, so a fast scroll shows no blank. */
export const OVERSCAN = 10;

/** The rows a viewport shows, with the overscan, as [first, end) indexes into `count` rows. */
export function visibleRange(scrollTop: number, height: number, count: number): [number, number] {
  const first = Math.min(count, Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN));
  const end = Math.min(count, Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
  return [first, Math.max(first, end)];
}
