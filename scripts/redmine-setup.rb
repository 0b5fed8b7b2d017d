# Run by scripts/test-servers under `rails runner` on a fresh instance:
# migrate, load Redmine's default data, enable the REST API, add what the
# release-readiness scenario needs (statuses, custom fields, workflow), and
# print the admin's API key as the last line.
ActiveRecord::Base.connection.migration_context.migrate
# Write-ahead logging (kept in the database file): a request's write no
# longer waits for the mailer thread's reads to end, which on a busy
# machine ran past the busy timeout and answered 500.
ActiveRecord::Base.connection.execute("PRAGMA journal_mode=WAL")
# Models loaded while booting saw the empty schema.
ActiveRecord::Base.descendants.each(&:reset_column_information)
Redmine::DefaultData::Loader.load("en")
Setting.rest_api_enabled = "1"

admin = User.find_by_login("admin")
admin.must_change_passwd = false
admin.save!

# Scenario statuses. "Archived" deliberately gets no workflow transition:
# Redmine then answers a change to it with 204 and changes nothing.
%w[Accepted Reopened Approved Archived].each do |name|
  IssueStatus.find_or_create_by!(name: name) { |s| s.is_closed = false }
end

managed = IssueStatus.where.not(name: "Archived").to_a
manager = Role.find_by!(name: "Manager")
Tracker.all.each do |tracker|
  managed.each do |from|
    managed.each do |to|
      next if from == to
      WorkflowTransition.find_or_create_by!(tracker: tracker, role: manager,
                                            old_status: from, new_status: to)
    end
  end
end

{ "Review version" => IssueCustomField, "Release ID" => IssueCustomField }.each do |name, klass|
  klass.find_or_create_by!(name: name) do |f|
    f.field_format = "string"
    f.is_for_all = true
    f.visible = true
    f.tracker_ids = Tracker.pluck(:id)
  end
end
VersionCustomField.find_or_create_by!(name: "Release ID") { |f| f.field_format = "string" }

puts admin.api_key
