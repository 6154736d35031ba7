// The GraphiQL page of pcg-graphql: GraphiQL with the explorer plugin, queries and mutations
// over HTTP POST, subscriptions over graphql-transport-ws to the same origin. The headers
// editor's values go with every HTTP request and, for subscriptions, as the connection_init
// payload (where the server reads `Authorization`).
import "./workers.js";

import { explorerPlugin } from "@graphiql/plugin-explorer";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { createRoot } from "react-dom/client";

import "graphiql/style.css";
import "@graphiql/plugin-explorer/style.css";
import "./page.css";

const url = new URL(window.location.pathname, window.location.origin);
const subscriptionUrl = new URL(url);
subscriptionUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";

const fetcher = createGraphiQLFetcher({
  url: url.toString(),
  subscriptionUrl: subscriptionUrl.toString(),
  // The server answers plain JSON; no @defer/@stream, so no multipart reader.
  enableIncrementalDelivery: false,
});

const plugins = [explorerPlugin()];

createRoot(document.getElementById("graphiql")).render(
  <GraphiQL
    fetcher={fetcher}
    plugins={plugins}
    defaultEditorToolsVisibility="headers"
    isHeadersEditorEnabled
    shouldPersistHeaders
    inputValueDeprecation
  />,
);
