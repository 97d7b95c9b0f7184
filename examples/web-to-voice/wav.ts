// Reads and repairs the header of a PCM WAV file: the voice service fixes the sizes espeak-ng
// cannot fill in when it writes to a pipe, and the workflow reads the duration it reports.

export interface WavInfo {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  /** Where the samples start. */
  dataOffset: number;
  /** Bytes of samples, as the header says. */
  dataBytes: number;
  durationMs: number;
}

/** Parses a RIFF/WAVE header (PCM only); throws a `TypeError` saying what is wrong. */
export function readWavInfo(wav: Uint8Array): WavInfo {
  const view = new DataView(wav.buffer, wav.byteOffset, wav.byteLength);
  const tag = (at: number) => String.fromCharCode(...wav.subarray(at, at + 4));
  if (wav.byteLength < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') {
    throw new TypeError('not a WAV file: no RIFF/WAVE header');
  }
  let format: { channels: number; sampleRate: number; bitsPerSample: number } | undefined;
  // Chunks follow the 12-byte RIFF header, each an id, a little-endian size and a body padded to even.
  for (let at = 12; at + 8 <= wav.byteLength; ) {
    const id = tag(at);
    const size = view.getUint32(at + 4, true);
    if (id === 'fmt ') {
      if (size < 16 || at + 24 > wav.byteLength) throw new TypeError('not a WAV file: short fmt chunk');
      if (view.getUint16(at + 8, true) !== 1) throw new TypeError('not a PCM WAV file');
      format = {
        channels: view.getUint16(at + 10, true),
        sampleRate: view.getUint32(at + 12, true),
        bitsPerSample: view.getUint16(at + 22, true),
      };
    } else if (id === 'data') {
      if (format === undefined) throw new TypeError('not a WAV file: data before fmt');
      const bytesPerSecond = format.sampleRate * format.channels * (format.bitsPerSample / 8);
      if (bytesPerSecond === 0) throw new TypeError('not a WAV file: zero sample rate');
      return {
        ...format,
        dataOffset: at + 8,
        dataBytes: size,
        durationMs: Math.round((size / bytesPerSecond) * 1000),
      };
    }
    at += 8 + size + (size % 2);
  }
  throw new TypeError('not a WAV file: no data chunk');
}

/**
 * Sets the RIFF and data sizes from the bytes actually there. A WAV written to a pipe cannot be
 * seeked back to, so espeak-ng leaves placeholder sizes (about 2 GiB) that players and duration
 * readers would believe. Changes `wav` in place and returns it.
 */
export function fixWavSizes(wav: Uint8Array): Uint8Array {
  const view = new DataView(wav.buffer, wav.byteOffset, wav.byteLength);
  const { dataOffset } = readWavInfo(wav);
  view.setUint32(4, wav.byteLength - 8, true);
  view.setUint32(dataOffset - 4, wav.byteLength - dataOffset, true);
  return wav;
}
