import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Bytes used by the files directly in `dir` (LevelDB keeps no subdirectories). */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const s = await stat(join(dir, name)).catch(() => null);
    if (s?.isFile()) total += s.size;
  }
  return total;
}
