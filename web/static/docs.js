// Swagger UI for the service's OpenAPI document, from BentoML's bundled copy: no CDN.
window.onload = function () {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null });
};
