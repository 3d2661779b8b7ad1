// The `agent` command's entry (bin/agent imports it): runs the command line of this process
// (program.ts) and sets the exit code.
import { EXIT_OK, main } from './program.ts';

const code = await main(process.argv.slice(2));
process.exitCode = code;
// A failed start may leave handles behind; every other command ends once its output drains,
// and a running foreground agent lives on its own handles until a signal stops it.
if (code !== EXIT_OK && ['start', 'relay'].includes(process.argv[2] ?? '')) process.exit(code);
