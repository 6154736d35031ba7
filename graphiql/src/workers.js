// Monaco runs its language services in web workers. The packages' own setups load them from
// esm.sh or through a bundler plugin; ours are bundled beside this file (build.mjs), so they
// come from this server like the page. Imported first: Monaco reads this when it starts.
const workerUrl = (name) => new URL(`./workers/${name}.js`, import.meta.url);

globalThis.MonacoEnvironment = {
  getWorker(_workerId, label) {
    if (label === "json" || label === "graphql") return new Worker(workerUrl(label));
    return new Worker(workerUrl("editor"));
  },
};
