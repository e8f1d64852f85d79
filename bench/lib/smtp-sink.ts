/**
 * A minimal SMTP sink for bench/smtp-outbound-cpu.ts, run as its own process
 * (so its CPU is not the client's): EHLO offers PIPELINING, SIZE and
 * 8BITMIME (no STARTTLS), every command gets a 250, DATA a 354, and the end of
 * the data a 250. The replies to one packet leave in one write, as a
 * pipelining server sends them. Prints its port; any line on stdin prints the
 * number of messages taken so far.
 *
 *   node --import tsx bench/lib/smtp-sink.ts [host]
 */
import { createServer } from 'node:net';

let count = 0;
const server = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  socket.write('220 sink ESMTP\r\n');
  let buffered = '';
  let inData = false;
  socket.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1');
    let out = '';
    for (;;) {
      if (inData) {
        const end = buffered.indexOf('\r\n.\r\n');
        if (end < 0) {
          // Keep only what may be the start of the terminator.
          if (buffered.length > 8) buffered = buffered.slice(-8);
          break;
        }
        buffered = buffered.slice(end + 5);
        inData = false;
        count++;
        out += '250 2.0.0 queued\r\n';
        continue;
      }
      const nl = buffered.indexOf('\r\n');
      if (nl < 0) break;
      const verb = buffered.slice(0, 4).toUpperCase();
      buffered = buffered.slice(nl + 2);
      if (verb === 'EHLO') out += '250-sink\r\n250-PIPELINING\r\n250-SIZE 50000000\r\n250 8BITMIME\r\n';
      else if (verb === 'DATA') {
        out += '354 go ahead\r\n';
        inData = true;
        // The data starts on a fresh line: lets the search find a lone '.' too.
        buffered = `\r\n${buffered}`;
      } else if (verb === 'QUIT') return void socket.end(`${out}221 bye\r\n`);
      else out += '250 2.0.0 ok\r\n';
    }
    if (out) socket.write(out);
  });
});
server.listen(0, process.argv[2] ?? '127.0.0.1', () => process.stdout.write(`${(server.address() as { port: number }).port}\n`));
process.stdin.on('data', () => process.stdout.write(`${count}\n`));
