-- Boards could name a gateway before gateways existed: those ids point nowhere, so clear them before the foreign key.
UPDATE "boards" SET "gateway_id" = NULL WHERE "gateway_id" IS NOT NULL;--> statement-breakpoint
CREATE TABLE "device_identity" (
	"id" text PRIMARY KEY NOT NULL,
	"device_id" text NOT NULL,
	"public_key" text NOT NULL,
	"private_key_ciphertext" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "gateways" (
	"id" uuid PRIMARY KEY NOT NULL,
	"organization_id" uuid NOT NULL,
	"name" text NOT NULL,
	"url" text NOT NULL,
	"token_ciphertext" text,
	"workspace_root" text,
	"allow_insecure_tls" boolean DEFAULT false NOT NULL,
	"device_token_ciphertext" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "gateways" ADD CONSTRAINT "gateways_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "gateways_org_name_idx" ON "gateways" USING btree ("organization_id","name");--> statement-breakpoint
ALTER TABLE "boards" ADD CONSTRAINT "boards_gateway_id_gateways_id_fk" FOREIGN KEY ("gateway_id") REFERENCES "public"."gateways"("id") ON DELETE set null ON UPDATE no action;