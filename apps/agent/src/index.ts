export { runCli, buildProgram, ExitCode, type CliIo, type CliIoInput } from './main.ts';
