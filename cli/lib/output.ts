/** The CLI's output conventions: human text by default, one JSON document with --json, progress on stderr. */

export interface Output {
  json: boolean;
  /** A line for humans (suppressed with --json). */
  info(line: string): void;
  /** The command's result: `human` lines, or `value` as JSON. */
  result(human: string, value: unknown): void;
  progress(label: string, total: number): Progress;
}

export interface Progress {
  tick(detail?: string): void;
  done(): void;
}

export function createOutput(json: boolean): Output {
  const interactive = process.stderr.isTTY === true && !json;
  return {
    json,
    info(line) {
      if (!json) process.stdout.write(`${line}\n`);
    },
    result(human, value) {
      process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human}\n`);
    },
    progress(label, total) {
      let count = 0;
      const draw = (detail = '') => {
        if (!interactive || total === 0) return;
        const width = 24;
        const filled = Math.round((count / total) * width);
        process.stderr.write(
          `\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${count}/${total} ${detail}\x1b[K`,
        );
      };
      draw();
      return {
        tick(detail) {
          count += 1;
          draw(detail);
        },
        done() {
          if (interactive && total > 0) process.stderr.write('\n');
        },
      };
    },
  };
}

/** Thrown for failures the user can fix; printed without a stack, exit code 1. */
export class CliError extends Error {}
