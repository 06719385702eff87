/** Builds the dashboard page into `outDir` (default `dist/monitor/dashboard/public`); returns the paths written. */
export function buildDashboard(outDir?: string): Promise<string[]>;
