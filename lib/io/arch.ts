/** A registry of architecture detectors (filled by nets/*): state_dict shapes -> architecture name + config. */

export type ShapeMap = Map<string, { shape: number[] }>;
export type ArchitectureDetector = (sd: ShapeMap) => { config: object } | null;

/** Kept on globalThis so that every copy of this module (ESM and CJS loaders, dist and sources) shares one registry. */
const KEY = Symbol.for('diffguide.io.architectureDetectors');
const g = globalThis as unknown as Record<symbol, Map<string, ArchitectureDetector> | undefined>;
const DETECTORS: Map<string, ArchitectureDetector> = (g[KEY] ??= new Map());

/** Register a detector under a name (e.g. 'guided-diffusion-unet'); re-registering a name replaces it. */
export function registerArchitectureDetector(name: string, fn: ArchitectureDetector): void {
  DETECTORS.set(name, fn);
}

/** Names of registered detectors. */
export function architectureDetectors(): string[] {
  return [...DETECTORS.keys()];
}

/** The first registered detector that recognises the keys and shapes, or null. A throwing detector counts as no match. */
export function detectArchitecture(sd: ShapeMap): { name: string; config: object } | null {
  for (const [name, fn] of DETECTORS) {
    try {
      const r = fn(sd);
      if (r) return { name, config: r.config };
    } catch {
      // a detector that cannot handle these keys is simply not a match
    }
  }
  return null;
}
