CREATE TABLE "board_webhook_payloads" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"organization_id" uuid NOT NULL,
	"board_id" uuid NOT NULL,
	"webhook_id" uuid NOT NULL,
	"delivery_id" text,
	"encoding" text NOT NULL,
	"payload" jsonb NOT NULL,
	"byte_size" integer NOT NULL,
	"content_type" text,
	"user_agent" text,
	"headers" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"source_ip" text,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	"enqueued_at" timestamp with time zone DEFAULT now() NOT NULL,
	"delivered_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "board_webhook_payloads_status_check" CHECK ("board_webhook_payloads"."status" in ('pending', 'delivered', 'blocked', 'dead_lettered')),
	CONSTRAINT "board_webhook_payloads_encoding_check" CHECK ("board_webhook_payloads"."encoding" in ('json', 'text', 'base64'))
);
--> statement-breakpoint
CREATE TABLE "board_webhooks" (
	"id" uuid PRIMARY KEY NOT NULL,
	"organization_id" uuid NOT NULL,
	"board_id" uuid NOT NULL,
	"description" text NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"agent_id" uuid,
	"secret_ciphertext" text,
	"signature_header" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "platform_flags" (
	"name" text PRIMARY KEY NOT NULL,
	"enabled" boolean NOT NULL,
	"reason" text,
	"updated_by" text,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "board_webhook_payloads" ADD CONSTRAINT "board_webhook_payloads_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "board_webhook_payloads" ADD CONSTRAINT "board_webhook_payloads_board_id_boards_id_fk" FOREIGN KEY ("board_id") REFERENCES "public"."boards"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "board_webhook_payloads" ADD CONSTRAINT "board_webhook_payloads_webhook_id_board_webhooks_id_fk" FOREIGN KEY ("webhook_id") REFERENCES "public"."board_webhooks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "board_webhooks" ADD CONSTRAINT "board_webhooks_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "board_webhooks" ADD CONSTRAINT "board_webhooks_board_id_boards_id_fk" FOREIGN KEY ("board_id") REFERENCES "public"."boards"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "board_webhooks" ADD CONSTRAINT "board_webhooks_agent_id_agents_id_fk" FOREIGN KEY ("agent_id") REFERENCES "public"."agents"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "board_webhook_payloads_delivery_idx" ON "board_webhook_payloads" USING btree ("webhook_id","delivery_id");--> statement-breakpoint
CREATE INDEX "board_webhook_payloads_webhook_idx" ON "board_webhook_payloads" USING btree ("webhook_id","created_at");--> statement-breakpoint
CREATE INDEX "board_webhook_payloads_pending_idx" ON "board_webhook_payloads" USING btree ("enqueued_at") WHERE "board_webhook_payloads"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "board_webhooks_board_idx" ON "board_webhooks" USING btree ("board_id","created_at");