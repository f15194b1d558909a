/** One line per event, timestamped, to stdout: easy to grep and to ship to any log collector. */
export type Logger = (line: string) => void;

export const consoleLogger: Logger = (line) => {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
};

export const silentLogger: Logger = () => {};
