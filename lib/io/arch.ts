/** A registry of architecture detectors (filled by nets/*): state_dict shapes -> architecture name + config. */

export type ShapeMap = Map<string, { shape: number[] }>;
export type ArchitectureDetector = (sd: ShapeMap) => { config: object } | null;

const DETECTORS = new Map<string, ArchitectureDetector>();

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
