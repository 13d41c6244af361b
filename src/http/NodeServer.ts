// The node:http server the platform serves on: what Node refuses or answers before the framework sees a request
// (malformed, oversized headers, CONNECT, Expect, not yet or no longer serving) is answered in the API's JSON shape.
import { createServer, type ServerResponse } from "node:http"

/** Answer `error` as JSON and close the connection, where the platform does not answer. */
const answerJson = (response: ServerResponse, status: number, tag: string, error: string) => {
  const body = JSON.stringify({ _tag: tag, error })
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    connection: "close"
  })
  response.end(body)
}

const rawJson = (status: number, reason: string, tag: string, error: string) => {
  const body = JSON.stringify({ _tag: tag, error })
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${
    Buffer.byteLength(body)
  }\r\n` +
    `Connection: close\r\n\r\n${body}`
}

/** Node's HTTP server, answering in JSON where Node alone would answer bare or not at all. */
export const createHttpServer = () => {
  // the API's middleware refuses a request without Host, in JSON
  const server = createServer({ requireHostHeader: false })
  // The API has no WebSocket; with an `upgrade` listener (the platform adds one), Node would divert every request
  // carrying Upgrade to it, its body never read.
  const on = server.on.bind(server)
  server.on =
    ((event: string, listener: (...args: Array<any>) => void) =>
      event === "upgrade" ? server : on(event, listener)) as typeof server.on
  // Before the platform's request listener is added, and once it is removed at shutdown, a request is answered 503
  // and its connection closed: no keep-alive connection holds the shutdown up.
  server.on("request", (_request, response) => {
    if (server.listenerCount("request") === 1) {
      answerJson(response, 503, "NotServing", "not serving requests (starting or shutting down); try again")
    }
  })
  server.on(
    "connect",
    (_request, socket) => socket.end(rawJson(405, "Method Not Allowed", "MethodNotAllowed", "CONNECT is not supported"))
  )
  server.on(
    "checkExpectation",
    (request, response) =>
      answerJson(response, 417, "ExpectationFailed", `unsupported Expect: ${request.headers.expect}`)
  )
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    if (error.code === "ECONNRESET" || !socket.writable) return socket.destroy()
    socket.end(
      error.code === "HPE_HEADER_OVERFLOW"
        ? rawJson(431, "Request Header Fields Too Large", "HeadersTooLarge", "request headers too large")
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? rawJson(408, "Request Timeout", "RequestTimeout", "request not received in time")
        : rawJson(400, "Bad Request", "InvalidRequest", "malformed HTTP request")
    )
  })
  return server
}
