// graphql-inspector `--onComplete` hook: writes the diff as JSON to $PCG_INSPECTOR_REPORT so the
// Python test decides what is acknowledged (the CLI's own exit code cannot know that).
const fs = require('node:fs');

module.exports = ({ breakingChanges, dangerousChanges, nonBreakingChanges }) => {
  const pick = (changes) => changes.map(({ type, message, path }) => ({ type, message, path }));
  fs.writeFileSync(process.env.PCG_INSPECTOR_REPORT, JSON.stringify({
    breaking: pick(breakingChanges),
    dangerous: pick(dangerousChanges),
    safe: pick(nonBreakingChanges),
  }));
};
