// Upload one file with tus-js-client, retrying across server restarts; print progress lines for the test.
//   node upload.mjs <endpoint> <file> <name> <chunkSize>
// Prints "URL <url>" once the upload exists, "ACK <offset>" after each accepted chunk, "DONE" at the end.
import fs from "node:fs";
import * as tus from "tus-js-client";

const [endpoint, file, name, chunkSize] = process.argv.slice(2);
const size = fs.statSync(file).size;
const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint,
  uploadSize: size,
  chunkSize: Number(chunkSize),
  metadata: { filename: name },
  retryDelays: [100, 200, 400, 800, 1600, 3200, 6400],
  onUploadUrlAvailable() { console.log(`URL ${upload.url}`); },
  onChunkComplete(_chunk, accepted) { console.log(`ACK ${accepted}`); },
  onError(error) { console.log(`ERROR ${error}`); process.exit(1); },
  onSuccess() { console.log("DONE"); },
});
upload.start();
