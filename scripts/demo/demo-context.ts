/** What every stage of `npm start` shares: where it works and how it talks to the user. */
export interface DemoContext {
  /** the repository root */
  root: string;
  /** the demo's working directory (`.arca-demo/`, or ARCA_DEMO_DIR), emptied at start */
  dir: string;
  /** apps/agent/bin/arca.mjs */
  arcaBin: string;
  say(line: string): void;
  /** a path as the user should type it: relative to the repository when inside it */
  show(file: string): string;
  /** prints what went wrong and exits with status 1 */
  fail(message: string): never;
}
