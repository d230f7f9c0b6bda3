/** The dashboard's one HTML page: no inline script or style (the CSP forbids both). */
export function pageHtml(jsHref: string, cssHref: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>embedq dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${cssHref}">
<script defer src="${jsHref}"></script>
</head>
<body>
<div id="app"><p class="boot">Loading the embedq dashboard… (it needs JavaScript)</p></div>
</body>
</html>
`
}
