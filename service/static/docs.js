// Swagger UI for /docs, from files served beside it (no CDN, no inline script: the page's
// Content-Security-Policy allows scripts from this server only). FastAPI's settings.
"use strict";

window.ui = SwaggerUIBundle({
  url: "openapi.json", // relative, like every URL here: a proxy's path prefix is kept
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
