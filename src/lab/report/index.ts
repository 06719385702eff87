/**
 * The lab's reports, each rendered from the one report document ({@link LabReport}): the terminal
 * summary, `report.md` and a self-contained `report.html`. `report.json` is the document itself.
 */
export { renderHtml } from './html.js';
export { renderMarkdown } from './markdown.js';
export { renderTerminal } from './terminal.js';
