// Starts Swagger UI on the API's own OpenAPI document (kept out of the HTML so the CSP needs no inline script).
window.addEventListener('load', () => {
  window.SwaggerUIBundle({
    url: '/api/v1/openapi.json',
    dom_id: '#api-reference',
    deepLinking: true,
    tryItOutEnabled: false,
  });
});
