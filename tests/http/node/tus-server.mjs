// The reference tus server (@tus/server with @tus/file-store), for side-by-side measurements.
//   node tus-server.mjs <directory> <port>
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const [directory, port] = process.argv.slice(2);
const server = new Server({ path: "/files", datastore: new FileStore({ directory }) });
server.listen({ host: "127.0.0.1", port: Number(port) }, () => console.log(`listening on ${port}`));
